//! A fake UPnP Internet Gateway Device on 127.0.0.1, for the port-mapping tests: an SSDP
//! responder (UDP) that answers every `M-SEARCH` with the `LOCATION` of its description, and a
//! small HTTP server that serves the device description, the WANIPConnection service's SCPD
//! (which the client reads to learn the actions and their arguments) and the SOAP control
//! URL. Every control request is recorded (action and arguments) for the test to check.
//!
//! Mapping rule: `AddPortMapping` succeeds only for the external port the test chose (the
//! port of its "router" forwarder); any other is `718 ConflictInMappingEntry`, so a client
//! that asks for its own port first has to fall back to `AddAnyPortMapping`, which hands out
//! the chosen port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const SERVICE: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";

/// One SOAP request the fake got: the action (from `SOAPAction`) and its arguments.
#[derive(Debug, Clone)]
pub struct Control {
    pub action: String,
    pub args: BTreeMap<String, String>,
}

pub struct FakeIgd {
    /// Where M-SEARCH goes (`--upnp-search`).
    pub ssdp: SocketAddr,
    controls: mpsc::Receiver<Control>,
}

impl FakeIgd {
    /// A gateway whose external address is `external_ip` and which maps `external_port`.
    pub fn start(external_ip: &str, external_port: u16) -> FakeIgd {
        let http = TcpListener::bind("127.0.0.1:0").expect("bind the fake IGD's HTTP port");
        let location = format!("http://{}/rootDesc.xml", http.local_addr().unwrap());
        let ssdp = UdpSocket::bind("127.0.0.1:0").expect("bind the fake IGD's SSDP port");
        let ssdp_addr = ssdp.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = ssdp.recv_from(&mut buf) {
                if !buf[..n].starts_with(b"M-SEARCH") {
                    continue;
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: \
                     urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: \
                     uuid:fake-igd::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                     EXT:\r\nSERVER: fake/1 UPnP/1.1 test/1\r\nLOCATION: {location}\r\n\r\n"
                );
                let _ = ssdp.send_to(reply.as_bytes(), from);
            }
        });
        let (tx, controls) = mpsc::channel();
        let external_ip = external_ip.to_string();
        thread::spawn(move || {
            for stream in http.incoming() {
                let Ok(stream) = stream else { return };
                let (tx, ip) = (tx.clone(), external_ip.clone());
                thread::spawn(move || serve(stream, &ip, external_port, &tx));
            }
        });
        FakeIgd {
            ssdp: ssdp_addr,
            controls,
        }
    }

    /// The next control request (bounded wait).
    pub fn next(&self, what: &str) -> Control {
        self.controls
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the fake IGD got no {what}"))
    }

    /// The next control request for `action`, skipping others (bounded wait).
    pub fn wait_for(&self, action: &str) -> Control {
        loop {
            let c = self.next(action);
            if c.action == action {
                return c;
            }
        }
    }
}

/// One HTTP request on `stream`, answered and closed.
fn serve(stream: TcpStream, external_ip: &str, external_port: u16, tx: &mpsc::Sender<Control>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, reply) = match (request_line.split_whitespace().next(), path) {
        (Some("GET"), "/rootDesc.xml") => ("200 OK", root_description()),
        (Some("GET"), "/WANIPCn.xml") => ("200 OK", scpd()),
        (Some("POST"), "/ctl/IPConn") => {
            let action = headers
                .get("soapaction")
                .and_then(|v| v.trim_matches('"').rsplit_once('#'))
                .map(|(_, a)| a.to_string())
                .unwrap_or_default();
            let args = arguments(&String::from_utf8_lossy(&body));
            let answer = control(&action, &args, external_ip, external_port);
            let _ = tx.send(Control { action, args });
            answer
        }
        _ => ("404 Not Found", String::new()),
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: \
         {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// The answer to one SOAP action: (HTTP status, envelope).
fn control(
    action: &str,
    args: &BTreeMap<String, String>,
    external_ip: &str,
    external_port: u16,
) -> (&'static str, String) {
    let port = args.get("NewExternalPort").map(String::as_str);
    let ok = |inner: String| ("200 OK", envelope(&inner));
    match action {
        "GetExternalIPAddress" => ok(format!(
            "<u:GetExternalIPAddressResponse xmlns:u=\"{SERVICE}\"><NewExternalIPAddress>\
             {external_ip}</NewExternalIPAddress></u:GetExternalIPAddressResponse>"
        )),
        "AddPortMapping" if port == Some(&external_port.to_string()) => ok(format!(
            "<u:AddPortMappingResponse xmlns:u=\"{SERVICE}\"></u:AddPortMappingResponse>"
        )),
        "AddPortMapping" => fault(718, "ConflictInMappingEntry"),
        "AddAnyPortMapping" => ok(format!(
            "<u:AddAnyPortMappingResponse xmlns:u=\"{SERVICE}\"><NewReservedPort>\
             {external_port}</NewReservedPort></u:AddAnyPortMappingResponse>"
        )),
        "DeletePortMapping" => ok(format!(
            "<u:DeletePortMappingResponse xmlns:u=\"{SERVICE}\"></u:DeletePortMappingResponse>"
        )),
        _ => fault(401, "Invalid Action"),
    }
}

fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>{inner}</s:Body>\
         </s:Envelope>"
    )
}

fn fault(code: u16, description: &str) -> (&'static str, String) {
    (
        "500 Internal Server Error",
        envelope(&format!(
            "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>\
             <detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}\
             </errorCode><errorDescription>{description}</errorDescription></UPnPError></detail>\
             </s:Fault>"
        )),
    )
}

/// The elements inside the action element of a SOAP request body: `<Name>value</Name>`.
fn arguments(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = body;
    while let Some(start) = rest.find("<New") {
        rest = &rest[start + 1..];
        let Some(close) = rest.find('>') else { break };
        let name = rest[..close].to_string();
        let after = &rest[close + 1..];
        let Some(end) = after.find(&format!("</{name}>")) else {
            break;
        };
        out.insert(name, after[..end].to_string());
        rest = &after[end..];
    }
    out
}

/// A device description like a home router's: the IGD, its WAN device and WAN connection
/// device, with the WANIPConnection service in the innermost.
fn root_description() -> String {
    format!(
        "<?xml version=\"1.0\"?>\r\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\
         <specVersion><major>1</major><minor>0</minor></specVersion><device>\
         <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>\
         <friendlyName>fake router</friendlyName><deviceList><device>\
         <deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><deviceList><device>\
         <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>\
         <serviceList><service><serviceType>{SERVICE}</serviceType>\
         <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>\
         <SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL>\
         <eventSubURL>/evt/IPConn</eventSubURL></service></serviceList>\
         </device></deviceList></device></deviceList></device></root>"
    )
}

/// The service description: the actions the client may call and their `in` arguments.
fn scpd() -> String {
    let action = |name: &str, ins: &[&str], outs: &[&str]| {
        let mut a = format!("<action><name>{name}</name><argumentList>");
        for (dir, list) in [("in", ins), ("out", outs)] {
            for arg in list {
                a.push_str(&format!(
                    "<argument><name>{arg}</name><direction>{dir}</direction>\
                     <relatedStateVariable>X</relatedStateVariable></argument>"
                ));
            }
        }
        a + "</argumentList></action>"
    };
    let mapping = [
        "NewRemoteHost",
        "NewExternalPort",
        "NewProtocol",
        "NewInternalPort",
        "NewInternalClient",
        "NewEnabled",
        "NewPortMappingDescription",
        "NewLeaseDuration",
    ];
    format!(
        "<?xml version=\"1.0\"?>\r\n<scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\
         <specVersion><major>1</major><minor>0</minor></specVersion><actionList>{}{}{}{}\
         </actionList></scpd>",
        action("GetExternalIPAddress", &[], &["NewExternalIPAddress"]),
        action("AddPortMapping", &mapping, &[]),
        action("AddAnyPortMapping", &mapping, &["NewReservedPort"]),
        action(
            "DeletePortMapping",
            &["NewRemoteHost", "NewExternalPort", "NewProtocol"],
            &[]
        ),
    )
}

//! Which router to ask for a port mapping: the default IPv4 gateway, read from the kernel's
//! routing table (`/proc/net/route` on Linux), unless `--gateway` names one.
//!
//! The parsing is a pure function of the file's text, so it is tested without a kernel.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Where Linux lists its IPv4 routes.
pub const ROUTE_FILE: &str = "/proc/net/route";

/// `RTF_UP | RTF_GATEWAY`: a route in use that goes through a gateway.
const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;

/// The gateway of the default route (destination and mask 0, flags up and gateway) with the
/// lowest metric, from the text of `/proc/net/route`. Lines that do not parse are skipped:
/// the file is the kernel's, but nothing read is trusted to be well formed.
///
/// The file writes each address as the hexadecimal of its `u32` in host byte order (on a
/// little-endian machine `010200C0` is 192.0.2.1), so it is read back with `from_str_radix`
/// and turned into bytes the same way.
pub fn default_gateway(route_table: &str) -> Option<Ipv4Addr> {
    route_table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let hex = |s: &str| u32::from_str_radix(s, 16).ok();
            let (dest, gw, flags, metric, mask) = (
                hex(f[1])?,
                hex(f[2])?,
                hex(f[3])?,
                f[6].parse::<u32>().ok()?,
                hex(f[7])?,
            );
            let default = dest == 0 && mask == 0;
            let up_via_gateway = flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
            (default && up_via_gateway && gw != 0)
                .then(|| (metric, Ipv4Addr::from(gw.to_ne_bytes())))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, ip)| ip)
}

/// `--gateway`'s value: `IP` (the PCP and NAT-PMP port, 5351) or `IP:PORT`.
pub fn parse_gateway(s: &str) -> Result<SocketAddr, String> {
    ipv4_with_port(s, super::port_map::NAT_PMP_PORT)
        .map(SocketAddr::V4)
        .ok_or_else(|| {
            format!("'{s}' is not an IPv4 gateway address (IP or IP:PORT, e.g. 192.168.1.1)")
        })
}

/// A router's address as a user writes it: an IPv4 address (at `default_port`) or IPv4:PORT
/// with a port other than 0 (`--gateway`, `--upnp-search`).
pub fn ipv4_with_port(s: &str, default_port: u16) -> Option<SocketAddrV4> {
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Some(SocketAddrV4::new(ip, default_port));
    }
    s.parse::<SocketAddrV4>().ok().filter(|a| a.port() != 0)
}

/// The gateway to ask: the one given, or the default route's (read from [`ROUTE_FILE`]), at
/// the PCP and NAT-PMP port. `Err` says why there is none.
pub fn find_gateway(given: Option<SocketAddr>) -> Result<SocketAddr, String> {
    if let Some(addr) = given {
        return Ok(addr);
    }
    let table = std::fs::read_to_string(ROUTE_FILE)
        .map_err(|e| format!("cannot read {ROUTE_FILE} to find the router: {e}"))?;
    default_gateway(&table)
        .map(|ip| SocketAddr::V4(SocketAddrV4::new(ip, super::port_map::NAT_PMP_PORT)))
        .ok_or_else(|| "no default IPv4 route, so no router to ask".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    /// The address as the kernel writes it on this machine (host byte order).
    fn hex(ip: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip.octets()))
    }

    fn line(iface: &str, dest: &str, gw: Ipv4Addr, flags: u32, metric: u32, mask: &str) -> String {
        format!(
            "{iface}\t{dest}\t{}\t{flags:04X}\t0\t0\t{metric}\t{mask}\t0\t0\t0\n",
            hex(gw)
        )
    }

    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        let a = Ipv4Addr::new(192, 168, 1, 1);
        let b = Ipv4Addr::new(10, 0, 0, 1);
        let table = [
            HEADER.to_string(),
            // A LAN route (no gateway) and a non-default route through a gateway.
            line("eth0", "0001A8C0", Ipv4Addr::UNSPECIFIED, 1, 0, "00FFFFFF"),
            line(
                "eth0",
                "0000000A",
                Ipv4Addr::new(10, 9, 9, 9),
                3,
                0,
                "000000FF",
            ),
            line("wlan0", "00000000", b, 3, 600, "00000000"),
            line("eth0", "00000000", a, 3, 100, "00000000"),
        ]
        .concat();
        assert_eq!(default_gateway(&table), Some(a));
    }

    /// The real file on a little-endian machine: `010200C0` is 192.0.2.1.
    #[cfg(target_endian = "little")]
    #[test]
    fn reads_the_kernels_byte_order() {
        let table = format!("{HEADER}eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
        assert_eq!(default_gateway(&table), Some(Ipv4Addr::new(192, 0, 2, 1)));
    }

    #[test]
    fn routes_that_are_down_or_without_a_gateway_and_garbage_give_none() {
        let gw = Ipv4Addr::new(192, 168, 1, 1);
        for table in [
            String::new(),
            HEADER.to_string(),
            // Down (flags 2: gateway, not up).
            [
                HEADER.to_string(),
                line("eth0", "00000000", gw, 2, 0, "00000000"),
            ]
            .concat(),
            // Up, but not through a gateway.
            [
                HEADER.to_string(),
                line("eth0", "00000000", gw, 1, 0, "00000000"),
            ]
            .concat(),
            // A gateway of 0.0.0.0.
            [
                HEADER.to_string(),
                line("eth0", "00000000", Ipv4Addr::UNSPECIFIED, 3, 0, "00000000"),
            ]
            .concat(),
            format!("{HEADER}eth0 zz 010200C0 0003 0 0 0 00000000\n"),
            format!("{HEADER}eth0 00000000 010200C0\n"),
            format!("{HEADER}eth0 00000000 010200C0 0003 0 0 -1 00000000\n"),
            "\u{0}\u{ff}garbage\n\n\t\t\t".to_string(),
        ] {
            assert_eq!(default_gateway(&table), None, "{table:?}");
        }
    }

    #[test]
    fn gateway_flag_takes_an_ip_or_ip_and_port() {
        assert_eq!(
            parse_gateway("192.168.1.1"),
            Ok("192.168.1.1:5351".parse().unwrap())
        );
        assert_eq!(
            parse_gateway("127.0.0.1:40000"),
            Ok("127.0.0.1:40000".parse().unwrap())
        );
        for bad in ["", "router", "::1", "[::1]:5351", "1.2.3.4:0", "1.2.3.4:x"] {
            assert!(parse_gateway(bad).is_err(), "{bad}");
        }
    }
}

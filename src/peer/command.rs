//! What the engine is asked to do: one [`Command`] per line of the REPL or a batch. The front
//! ends turn lines into commands (`repl/command.rs`) and hand the node their parser
//! ([`crate::peer::PeerNode::set_parser`]); the engine never reads user text itself.

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Peers,
    Files {
        peer: String,
    },
    /// `get PEER FILE` pins a source; `get FILE` (or a first word that is no known peer's
    /// name: decided when it runs) fetches from every peer that has the content. `query` is
    /// the whole argument: what is looked for when `peer` turns out to be no peer's name.
    Get {
        peer: Option<String>,
        file: String,
        query: String,
    },
    Search {
        text: String,
    },
    Msg {
        peer: String,
        text: String,
    },
    Shared,
    Rescan,
    /// `help`, or `help COMMAND` for one command (the front end checked that it exists; it
    /// also words the answer).
    Help {
        topic: Option<String>,
    },
    Quit,
    WaitPeer {
        name: String,
        seconds: f64,
    },
    Sleep {
        seconds: f64,
    },
    Downloads,
    Resume {
        file: Option<String>,
    },
    Cancel {
        file: String,
    },
    Connect {
        addr: String,
    },
    /// `trust` lists the names pinned to keys; `trust NAME ID` pins `NAME` to `ID`.
    Trust {
        set: Option<(String, crate::identity::PeerId)>,
    },
    /// `forget NAME`: unpins the name.
    Forget {
        name: String,
    },
    /// `limit` shows the rate limits; `limit WHICH RATE` sets one (`None`: no limit).
    Limit {
        set: Option<(LimitKind, Option<u64>)>,
    },
}

/// Which rate limit `limit` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    Down,
    Up,
    DownPerPeer,
    UpPerPeer,
}

/// Turns one line of input into a command: `Ok(None)` for a blank line or a comment, `Err`
/// with the front end's words for a line that is no command.
///
/// The node calls it when a line's turn comes, rather than the input threads before sending:
/// the reactor's `Control::Line` is shared with the tracker and knows nothing of commands, and
/// a line that is no command must fail in its place in the queue (a batch stops at that line,
/// after the commands before it ran).
pub type Parser = fn(&str) -> Result<Option<Command>, String>;

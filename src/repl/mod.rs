//! Front ends: the line REPL, batch mode and serve mode all parse lines into the same
//! [`Command`](crate::peer::Command) values and render the engine's events through the same [`Ui`] (human text or
//! `--json`); none of them touches a socket. `screen` is the one path to the terminal, `editor` the REPL's line editor,
//! `config` the layered settings of `p2p peer`, `log` the `tracing` set-up.

pub mod command;
pub mod config;
pub mod editor;
pub mod event;
pub mod input;
pub mod log;
pub mod screen;
pub mod text;
pub mod ui;

pub use command::parse;
pub use ui::{Ui, UiOptions};

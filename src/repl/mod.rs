//! Front ends: the line REPL, batch mode and serve mode all parse lines into the same
//! [`Command`] values and print through the same [`Ui`]; none of them touches a socket.

pub mod command;
pub mod input;
pub mod ui;

pub use command::{Command, parse};
pub use ui::Ui;

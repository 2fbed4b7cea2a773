//! What a person would read: events rendered as `repl::Ui` prints them.

use crate::peer::Event;

/// An event as `repl::Ui` prints it without `--json` or `-q`: (on stderr, lines). The same
/// rules as `Ui::event` and `Ui::human` (hidden files skipped silently, `warning: ` and
/// `error: ` in front of problems).
pub fn human(event: &Event) -> Option<(bool, Vec<String>)> {
    use crate::repl::event::{Weight, human_lines, weight};
    if let Event::Skipped { file, .. } = event
        && file.starts_with('.')
    {
        return None;
    }
    let tag = crate::repl::event::tag(event);
    let stderr = match weight(event) {
        Weight::Silent => return None,
        Weight::Problem => true,
        Weight::Result | Weight::Notice => false,
    };
    let lines = human_lines(event)
        .into_iter()
        .map(|l| format!("{tag}{l}"))
        .collect();
    Some((stderr, lines))
}

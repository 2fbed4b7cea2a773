//! Shared folders as trees (issue 15): the rules an entry path from the network obeys.

pub mod path_rules;

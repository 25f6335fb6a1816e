//! Where a boot stopped, and the likely causes: rules kept in one table
//! ([`RULES`]), each looking at the boot's milestones and events.

use serde::Serialize;

use super::Boot;
use super::phases::Milestones;

/// What the rules say of a boot that stalled or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The rule's name (`no-dhcp`, `ack-without-209`, …).
    pub rule: &'static str,
    /// The step expected next that did not come.
    pub expected: String,
    /// Likely causes, most likely first.
    pub causes: Vec<String>,
    /// What the rule saw (readings, file names, console lines).
    pub evidence: Vec<String>,
}

impl Diagnosis {
    /// One line: the expected step and the first cause.
    pub fn headline(&self) -> String {
        match self.causes.first() {
            Some(cause) => format!("{}: {cause}", self.expected),
            None => self.expected.clone(),
        }
    }
}

/// A boot's timeline and what the rules make of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Why {
    pub boot: Boot,
    pub milestones: Milestones,
    pub diagnosis: Option<Diagnosis>,
}

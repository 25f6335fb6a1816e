//! What every action shares: the `Run` of one action on one node (state
//! changes through the lifecycle table, steps, progress, abort checks), its
//! failure reasons, and the reservation it holds while it runs.

use std::time::Duration;

use super::lab::{Engine, EngineEvent};
use super::lifecycle::{self, State, Step, Trigger};
use super::store::StoreError;
use crate::inventory::Node;

/// How often a waiting step looks at the store (agent reports, aborts).
pub(super) const POLL: Duration = Duration::from_millis(200);

/// Why an action stopped.
#[derive(Debug)]
pub enum Failure {
    Step(Step, String),
    Aborted(String),
}

impl Failure {
    pub(super) fn reason(&self) -> String {
        match self {
            Failure::Step(step, why) => format!("{step}: {why}"),
            Failure::Aborted(by) => format!("aborted by {by}"),
        }
    }
}

pub(super) fn store_failure(step: Step) -> impl Fn(StoreError) -> Failure {
    move |e| Failure::Step(step, e.to_string())
}

/// One action on one node.
pub(super) struct Run<'a> {
    pub engine: &'a Engine,
    pub node: &'a Node,
}

impl Run<'_> {
    pub(super) fn name(&self) -> &str {
        &self.node.name
    }

    pub(super) fn go(
        &self,
        trigger: Trigger,
        to: State,
        step: Option<Step>,
        reason: Option<&str>,
    ) -> Result<(), Failure> {
        let from = lifecycle::sources(trigger, to);
        let detail = reason.map_or_else(
            || step.map_or(String::new(), |s| s.to_string()),
            str::to_string,
        );
        let event = self
            .engine
            .event(self.name(), trigger.name(), to.name(), &detail);
        self.engine
            .store()
            .transition(
                self.name(),
                &from,
                to.name(),
                step.map(Step::name),
                reason,
                &event,
            )
            .map_err(store_failure(step.unwrap_or(Step::Validate)))?;
        self.engine.emit(EngineEvent::State {
            node: self.name().to_string(),
            state: to,
            step,
            reason: reason.map(str::to_string),
        });
        Ok(())
    }

    pub(super) fn step(&self, state: State, step: Step) -> Result<(), Failure> {
        self.engine
            .store()
            .set_step(self.name(), step.name())
            .map_err(store_failure(step))?;
        self.engine.emit(EngineEvent::State {
            node: self.name().to_string(),
            state,
            step: Some(step),
            reason: None,
        });
        self.check_abort()
    }

    /// The step the store says this node is at.
    pub(super) fn current_step(&self) -> Option<Step> {
        let record = self.engine.record(self.name()).ok()?;
        record.step.as_deref()?.parse().ok()
    }

    /// The power and boot device petitlab just set, as the last reading.
    pub(super) fn reading(&self, power_on: bool, boot_device: &str) {
        self.engine
            .note_reading(self.name(), Some(power_on), Some(boot_device));
    }

    pub(super) fn progress(&self, step: Step, message: String, fraction: Option<f64>) {
        self.engine.emit(EngineEvent::Progress {
            node: self.name().to_string(),
            step,
            message,
            fraction,
        });
    }

    pub(super) fn check_abort(&self) -> Result<(), Failure> {
        match self.engine.record(self.name()) {
            Ok(r) => match r.abort_requested {
                Some(by) => Err(Failure::Aborted(by)),
                None => Ok(()),
            },
            Err(_) => Ok(()),
        }
    }
}

/// Runs `f` holding the node's reservation.
pub(super) async fn reserved<F, Fut>(
    engine: &Engine,
    node: &Node,
    action: &str,
    f: F,
) -> Result<String, String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    engine
        .store()
        .reserve(&node.name, &engine.holder, action)
        .map_err(|e| e.to_string())?;
    let result = f().await;
    let _ = engine.store().release(&node.name, &engine.holder);
    result
}

//! The provisioning state machine, Ironic-style: every state, every allowed
//! transition (one table), the steps of a deploy, and what a restart does
//! with a node whose petitlab died mid-action.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Known from lab.toml, BMC access not yet verified.
    Enroll,
    /// BMC access verified.
    Manageable,
    /// Ready to deploy.
    Available,
    /// petitlab is working: prepare, power, image write, reboot.
    Deploying,
    /// The node netboots the deploy ramdisk; petitlab waits for its agent.
    WaitCallback,
    DeployFailed,
    /// The instance is up.
    Active,
    /// Powering off and removing the instance's boot files.
    Undeploying,
    /// Removing the deploy's leftovers and the boot override.
    Cleaning,
    /// Undeploy or cleaning failed: the node needs an admin (undeploy again).
    Error,
}

pub const ALL_STATES: [State; 10] = [
    State::Enroll,
    State::Manageable,
    State::Available,
    State::Deploying,
    State::WaitCallback,
    State::DeployFailed,
    State::Active,
    State::Undeploying,
    State::Cleaning,
    State::Error,
];

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Enroll => "enroll",
            State::Manageable => "manageable",
            State::Available => "available",
            State::Deploying => "deploying",
            State::WaitCallback => "wait-callback",
            State::DeployFailed => "deploy-failed",
            State::Active => "active",
            State::Undeploying => "undeploying",
            State::Cleaning => "cleaning",
            State::Error => "error",
        }
    }

    /// A state in which petitlab is acting on the node.
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            State::Deploying | State::WaitCallback | State::Undeploying | State::Cleaning
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        ALL_STATES
            .into_iter()
            .find(|state| state.name() == s)
            .ok_or_else(|| format!("{s:?} is not a provisioning state"))
    }
}

/// What moves a node from one state to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// BMC access verified.
    Manage,
    Provide,
    Deploy,
    /// The node is powered on into the deploy ramdisk.
    WaitForAgent,
    /// The agent called back.
    AgentCalledBack,
    Succeed,
    Fail,
    Abort,
    Undeploy,
    Clean,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Manage => "manage",
            Trigger::Provide => "provide",
            Trigger::Deploy => "deploy",
            Trigger::WaitForAgent => "wait-for-agent",
            Trigger::AgentCalledBack => "agent-called-back",
            Trigger::Succeed => "succeed",
            Trigger::Fail => "fail",
            Trigger::Abort => "abort",
            Trigger::Undeploy => "undeploy",
            Trigger::Clean => "clean",
        }
    }
}

use State::*;
use Trigger::*;

/// Every allowed transition: (from, trigger, to).
pub const TRANSITIONS: &[(State, Trigger, State)] = &[
    (Enroll, Manage, Manageable),
    (Manageable, Provide, Available),
    (Available, Deploy, Deploying),
    (DeployFailed, Deploy, Deploying),
    (Deploying, WaitForAgent, WaitCallback),
    (WaitCallback, AgentCalledBack, Deploying),
    (Deploying, Succeed, Active),
    (Deploying, Fail, DeployFailed),
    (WaitCallback, Fail, DeployFailed),
    (Deploying, Abort, DeployFailed),
    (WaitCallback, Abort, DeployFailed),
    (Active, Undeploy, Undeploying),
    (DeployFailed, Undeploy, Undeploying),
    (Error, Undeploy, Undeploying),
    (Available, Undeploy, Undeploying),
    (Undeploying, Clean, Cleaning),
    (Cleaning, Succeed, Available),
    (Undeploying, Fail, Error),
    (Cleaning, Fail, Error),
];

/// Where `trigger` takes a node in `from`, if it is allowed there.
pub fn next(from: State, trigger: Trigger) -> Option<State> {
    TRANSITIONS
        .iter()
        .find(|(f, t, _)| *f == from && *t == trigger)
        .map(|(_, _, to)| *to)
}

/// The states `trigger` leads to `to` from: the compare-and-set list for the store.
pub fn sources(trigger: Trigger, to: State) -> Vec<&'static str> {
    TRANSITIONS
        .iter()
        .filter(|(_, t, dest)| *t == trigger && *dest == to)
        .map(|(from, _, _)| from.name())
        .collect()
}

/// The states from which `trigger` is allowed, for error messages.
pub fn allowed_from(trigger: Trigger) -> Vec<&'static str> {
    TRANSITIONS
        .iter()
        .filter(|(_, t, _)| *t == trigger)
        .map(|(from, _, _)| from.name())
        .collect()
}

/// The steps of deploy and undeploy; a failure names the step it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Verify,
    Validate,
    PrepareRamdisk,
    SetBootDevice,
    PowerOn,
    WaitCallback,
    WriteImage,
    PrepareInstance,
    Reboot,
    WaitActive,
    PowerOff,
    CleanUp,
}

pub const ALL_STEPS: [Step; 12] = [
    Step::Verify,
    Step::Validate,
    Step::PrepareRamdisk,
    Step::SetBootDevice,
    Step::PowerOn,
    Step::WaitCallback,
    Step::WriteImage,
    Step::PrepareInstance,
    Step::Reboot,
    Step::WaitActive,
    Step::PowerOff,
    Step::CleanUp,
];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Verify => "verify",
            Step::Validate => "validate",
            Step::PrepareRamdisk => "prepare-ramdisk",
            Step::SetBootDevice => "set-boot-device",
            Step::PowerOn => "power-on",
            Step::WaitCallback => "wait-callback",
            Step::WriteImage => "write-image",
            Step::PrepareInstance => "prepare-instance",
            Step::Reboot => "reboot",
            Step::WaitActive => "wait-active",
            Step::PowerOff => "power-off",
            Step::CleanUp => "clean-up",
        }
    }

    /// Steps in which petitlab only waits for the node: the node carries on
    /// without petitlab, so a restarted petitlab can pick the wait up again.
    /// In every other step petitlab itself was writing files or driving the
    /// BMC, and cannot know how far it got.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            Step::WaitCallback | Step::WriteImage | Step::WaitActive
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Step {
    type Err = String;
    fn from_str(s: &str) -> Result<Step, String> {
        ALL_STEPS
            .into_iter()
            .find(|step| step.name() == s)
            .ok_or_else(|| format!("{s:?} is not a step"))
    }
}

/// What a restart does with a node whose action's process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Keep the state; `petitlab deploy` picks the step up again.
    Resume(Step),
    /// Move to this failure state with the reason "interrupted".
    Fail(State),
    /// Nothing was in progress.
    Nothing,
}

pub fn recovery(state: State, step: Option<Step>) -> Recovery {
    match (state, step) {
        (Deploying | WaitCallback, Some(step)) if step.resumable() => Recovery::Resume(step),
        (Deploying | WaitCallback, _) => Recovery::Fail(DeployFailed),
        (Undeploying | Cleaning, _) => Recovery::Fail(Error),
        _ => Recovery::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_runs_through_the_table() {
        let path = [
            (Manage, Manageable),
            (Provide, Available),
            (Deploy, Deploying),
            (WaitForAgent, WaitCallback),
            (AgentCalledBack, Deploying),
            (Succeed, Active),
            (Undeploy, Undeploying),
            (Clean, Cleaning),
            (Succeed, Available),
        ];
        let mut state = Enroll;
        for (trigger, expected) in path {
            state = next(state, trigger)
                .unwrap_or_else(|| panic!("{trigger:?} not allowed from {state}"));
            assert_eq!(state, expected);
        }
    }

    #[test]
    fn failures_and_refusals() {
        assert_eq!(next(WaitCallback, Fail), Some(DeployFailed));
        assert_eq!(next(DeployFailed, Deploy), Some(Deploying));
        assert_eq!(next(Cleaning, Fail), Some(Error));
        assert_eq!(
            next(Active, Deploy),
            None,
            "deploy an active node: undeploy first"
        );
        assert_eq!(next(Enroll, Deploy), None);
        assert_eq!(next(Available, Abort), None);
        assert_eq!(sources(Fail, DeployFailed), ["deploying", "wait-callback"]);
        assert!(allowed_from(Deploy).contains(&"deploy-failed"));
    }

    #[test]
    fn every_state_and_step_name_round_trips() {
        for state in ALL_STATES {
            assert_eq!(state.name().parse::<State>(), Ok(state));
        }
        for step in ALL_STEPS {
            assert_eq!(step.name().parse::<Step>(), Ok(step));
        }
        assert!("deployed".parse::<State>().is_err());
    }

    #[test]
    fn a_restart_resumes_waits_and_fails_actions() {
        use Recovery as R;
        assert_eq!(
            recovery(WaitCallback, Some(Step::WaitCallback)),
            R::Resume(Step::WaitCallback)
        );
        assert_eq!(
            recovery(Deploying, Some(Step::WriteImage)),
            R::Resume(Step::WriteImage)
        );
        assert_eq!(
            recovery(Deploying, Some(Step::PowerOn)),
            R::Fail(DeployFailed)
        );
        assert_eq!(recovery(Deploying, None), R::Fail(DeployFailed));
        assert_eq!(recovery(Cleaning, Some(Step::CleanUp)), R::Fail(Error));
        assert_eq!(recovery(Active, None), R::Nothing);
    }
}

//! Escape sequences typed in `petitlab console`, as in ssh and ipmitool's
//! SOL client: the escape character (default `~`) is special only at the
//! start of a line, i.e. first in the session or right after CR or LF.
//!
//! `~.` quits, `~B` sends a serial break, `~?` shows help, `~~` sends one
//! `~`; `~` followed by anything else sends both characters. I/O-free: key
//! bytes in, [`Action`]s out.

/// The escape character unless configured otherwise.
pub const DEFAULT_ESCAPE: u8 = b'~';

/// What the console command should do with the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bytes for the node's console.
    Send(Vec<u8>),
    /// End the console session.
    Quit,
    /// Send a serial break (SOL "generate break").
    Break,
    /// Show [`EscapeMachine::help_text`] locally.
    Help,
}

/// State kept between key presses.
#[derive(Debug, Clone)]
pub struct EscapeMachine {
    escape: u8,
    at_line_start: bool,
    /// The escape character was typed at a line start; the next byte decides.
    pending: bool,
}

impl Default for EscapeMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl EscapeMachine {
    /// A machine with `~` as escape character, at the start of a line.
    pub fn new() -> Self {
        Self::with_escape_char(DEFAULT_ESCAPE)
    }

    pub fn with_escape_char(escape: u8) -> Self {
        Self {
            escape,
            at_line_start: true,
            pending: false,
        }
    }

    /// Translate typed bytes. Consecutive bytes to send are merged into one
    /// [`Action::Send`]. Input after a [`Action::Quit`] is dropped.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut send = Vec::new();
        for &b in input {
            let command = if self.pending {
                self.pending = false;
                match b {
                    b'.' => Some(Action::Quit),
                    b'B' => Some(Action::Break),
                    b'?' => Some(Action::Help),
                    _ if b == self.escape => {
                        send.push(b);
                        self.at_line_start = false;
                        None
                    }
                    _ => {
                        send.extend_from_slice(&[self.escape, b]);
                        self.at_line_start = is_newline(b);
                        None
                    }
                }
            } else if self.at_line_start && b == self.escape {
                self.pending = true;
                None
            } else {
                send.push(b);
                self.at_line_start = is_newline(b);
                None
            };
            // After a command we are still at a line start, as in ssh, so
            // `~B~.` works.
            if let Some(command) = command {
                if !send.is_empty() {
                    actions.push(Action::Send(std::mem::take(&mut send)));
                }
                let quit = command == Action::Quit;
                actions.push(command);
                if quit {
                    return actions;
                }
            }
        }
        if !send.is_empty() {
            actions.push(Action::Send(send));
        }
        actions
    }

    /// An escape character was typed and waits for the next key.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Help shown for `~?`.
    pub fn help_text(&self) -> String {
        let e = char::from(self.escape);
        format!(
            "Supported escape sequences (at the start of a line):\r\n\
             {e}.  end the console session\r\n\
             {e}B  send a serial break to the node\r\n\
             {e}?  this help\r\n\
             {e}{e}  send a literal {e}\r\n"
        )
    }
}

fn is_newline(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(s: &str) -> Action {
        Action::Send(s.as_bytes().to_vec())
    }

    fn feed(input: &str) -> Vec<Action> {
        EscapeMachine::new().feed(input.as_bytes())
    }

    #[test]
    fn commands_at_session_start() {
        assert_eq!(feed("~."), [Action::Quit]);
        assert_eq!(feed("~B"), [Action::Break]);
        assert_eq!(feed("~?"), [Action::Help]);
        assert_eq!(feed("~~"), [send("~")]);
        assert_eq!(feed("~x"), [send("~x")]);
    }

    #[test]
    fn tilde_mid_line_is_plain_text() {
        assert_eq!(feed("ls ~.\r"), [send("ls ~.\r")]);
        assert_eq!(feed("a~B"), [send("a~B")]);
    }

    #[test]
    fn commands_after_cr_or_lf() {
        assert_eq!(feed("ls\r~."), [send("ls\r"), Action::Quit]);
        assert_eq!(feed("ls\n~B"), [send("ls\n"), Action::Break]);
    }

    #[test]
    fn still_at_line_start_after_a_command() {
        assert_eq!(feed("~B~?~."), [Action::Break, Action::Help, Action::Quit]);
    }

    #[test]
    fn literal_tilde_ends_line_start() {
        assert_eq!(feed("~~~."), [send("~~.")]);
    }

    #[test]
    fn escape_then_newline_keeps_line_start() {
        assert_eq!(feed("~\r~."), [send("~\r"), Action::Quit]);
    }

    #[test]
    fn input_after_quit_is_dropped() {
        assert_eq!(feed("~.rm -rf /\r"), [Action::Quit]);
    }

    #[test]
    fn pending_escape_across_calls() {
        let mut m = EscapeMachine::new();
        assert_eq!(m.feed(b"~"), []);
        assert!(m.is_pending());
        assert_eq!(m.feed(b"."), [Action::Quit]);
        assert!(!m.is_pending());
        let mut m = EscapeMachine::new();
        assert_eq!(m.feed(b"echo hi\r"), [send("echo hi\r")]);
        assert_eq!(m.feed(b"~"), []);
        assert_eq!(m.feed(b"B"), [Action::Break]);
        assert_eq!(m.feed(b"x~."), [send("x~.")]);
    }

    #[test]
    fn other_escape_char() {
        let mut m = EscapeMachine::with_escape_char(b'&');
        assert_eq!(m.feed(b"~.\r&."), [send("~.\r"), Action::Quit]);
        let mut m = EscapeMachine::with_escape_char(b'&');
        assert_eq!(m.feed(b"&&&?"), [send("&&?")]);
        assert!(m.help_text().contains("&.  end the console session"));
    }

    #[test]
    fn help_mentions_every_command() {
        let help = EscapeMachine::new().help_text();
        for seq in ["~.", "~B", "~?", "~~"] {
            assert!(help.contains(seq), "{help}");
        }
    }
}

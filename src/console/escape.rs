//! Escape sequences typed in `petitlab console`, as in ssh and ipmitool's
//! SOL client: the escape character (default `~`) is special only at the
//! start of a line, i.e. first in the session or right after CR or LF.
//!
//! `~.` quits, `~B` sends a serial break, `~?` shows help, `~~` sends one
//! `~`; `~` followed by anything else sends both characters. I/O-free: key
//! bytes in, [`Action`]s out.
//!
//! `petitlab console -e CHAR` picks another escape character ([`EscapeChar`]);
//! `-e none` turns escapes off: every byte goes to the node, and only
//! closing the terminal (or killing the client) ends the session.

/// The escape character unless configured otherwise.
pub const DEFAULT_ESCAPE: u8 = b'~';

/// The escape character chosen with `console -e`: one printable ASCII
/// character, or none at all (`-e none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscapeChar(Option<u8>);

impl Default for EscapeChar {
    fn default() -> Self {
        EscapeChar(Some(DEFAULT_ESCAPE))
    }
}

/// Why an `-e` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeCharError {
    #[error("the escape character must be one character (or `none`), not {0:?}")]
    NotOne(String),
    #[error(
        "the escape character must be printable ASCII, not {0:?} (a control or non-ASCII \
         character cannot be typed reliably at the start of a line)"
    )]
    NotPrintable(String),
    #[error("{0:?} cannot be the escape character: it is one of the commands after it (. B ?)")]
    Command(char),
}

impl std::str::FromStr for EscapeChar {
    type Err = EscapeCharError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "none" {
            return Ok(EscapeChar(None));
        }
        let mut chars = value.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(EscapeCharError::NotOne(value.to_string()));
        };
        if !c.is_ascii_graphic() {
            return Err(EscapeCharError::NotPrintable(value.to_string()));
        }
        if matches!(c, '.' | 'B' | '?') {
            return Err(EscapeCharError::Command(c));
        }
        Ok(EscapeChar(Some(c as u8)))
    }
}

impl EscapeChar {
    /// No escapes: everything typed goes to the node.
    pub const NONE: EscapeChar = EscapeChar(None);

    pub fn byte(self) -> Option<u8> {
        self.0
    }

    /// The reminder in the line printed at attach: "~. quits, ~? helps"
    /// (`quit` names what `~.` does), or how to end it without escapes.
    pub fn reminder(self, quit: &str) -> String {
        match self.0 {
            Some(e) => {
                let e = char::from(e);
                format!("{e}. {quit}, {e}? helps")
            }
            None => "escapes off (-e none): close the terminal to end it".to_string(),
        }
    }
}

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
    /// None: escapes off, every byte is sent.
    escape: Option<u8>,
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
        Self::with_escape(EscapeChar(Some(escape)))
    }

    /// A machine for `console -e`'s choice (perhaps no escapes at all).
    pub fn with_escape(escape: EscapeChar) -> Self {
        Self {
            escape: escape.0,
            at_line_start: true,
            pending: false,
        }
    }

    /// Translate typed bytes. Consecutive bytes to send are merged into one
    /// [`Action::Send`]. Input after a [`Action::Quit`] is dropped.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let Some(escape) = self.escape else {
            return match input {
                [] => Vec::new(),
                bytes => vec![Action::Send(bytes.to_vec())],
            };
        };
        let mut actions = Vec::new();
        let mut send = Vec::new();
        for &b in input {
            let command = if self.pending {
                self.pending = false;
                match b {
                    b'.' => Some(Action::Quit),
                    b'B' => Some(Action::Break),
                    b'?' => Some(Action::Help),
                    _ if b == escape => {
                        send.push(b);
                        self.at_line_start = false;
                        None
                    }
                    _ => {
                        send.extend_from_slice(&[escape, b]);
                        self.at_line_start = is_newline(b);
                        None
                    }
                }
            } else if self.at_line_start && b == escape {
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

    /// Help shown for `~?` (never asked for with escapes off).
    pub fn help_text(&self) -> String {
        let Some(e) = self.escape.map(char::from) else {
            return "No escape sequences (-e none): close the terminal to end the console.\r\n"
                .to_string();
        };
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
    fn caret_escape_passes_tilde_through() {
        let escape: EscapeChar = "^".parse().unwrap();
        let mut m = EscapeMachine::with_escape(escape);
        // `~.` and `~B` are plain text now, at a line start too.
        assert_eq!(m.feed(b"~."), [send("~.")]);
        assert_eq!(
            m.feed(b"\r~B\r^B^?^^^."),
            [send("\r~B\r"), Action::Break, Action::Help, send("^^.")]
        );
        assert_eq!(m.feed(b"\r^."), [send("\r"), Action::Quit]);
        assert!(m.help_text().contains("^B  send a serial break"));
        assert_eq!(escape.reminder("quits"), "^. quits, ^? helps");
    }

    #[test]
    fn no_escape_sends_everything() {
        let mut m = EscapeMachine::with_escape(EscapeChar::NONE);
        assert_eq!(m.feed(b"~."), [send("~.")]);
        assert_eq!(m.feed(b"\r~B~?\r&.\r"), [send("\r~B~?\r&.\r")]);
        assert_eq!(m.feed(b""), []);
        assert!(!m.is_pending());
        assert!(m.help_text().contains("-e none"));
        assert!(
            EscapeChar::NONE
                .reminder("quits")
                .contains("close the terminal")
        );
    }

    #[test]
    fn escape_char_values() {
        assert_eq!("~".parse(), Ok(EscapeChar::default()));
        assert_eq!("none".parse(), Ok(EscapeChar::NONE));
        assert_eq!("&".parse::<EscapeChar>().unwrap().byte(), Some(b'&'));
        for bad in ["", "ab", "~~", "nonE"] {
            assert_eq!(
                bad.parse::<EscapeChar>(),
                Err(EscapeCharError::NotOne(bad.to_string())),
                "{bad:?}"
            );
        }
        for bad in ["\x01", "\x1b", "\x7f", " ", "\t", "é"] {
            assert_eq!(
                bad.parse::<EscapeChar>(),
                Err(EscapeCharError::NotPrintable(bad.to_string())),
                "{bad:?}"
            );
        }
        assert_eq!(
            ".".parse::<EscapeChar>(),
            Err(EscapeCharError::Command('.'))
        );
        let message = "\x03".parse::<EscapeChar>().unwrap_err().to_string();
        assert!(message.contains("printable ASCII"), "{message}");
    }

    #[test]
    fn help_mentions_every_command() {
        let help = EscapeMachine::new().help_text();
        for seq in ["~.", "~B", "~?", "~~"] {
            assert!(help.contains(seq), "{help}");
        }
    }
}

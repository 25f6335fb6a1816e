//! A virtual host's serial port: two byte pipes between the host side (its
//! firmware and OS, or a test playing them) and the BMC's SOL payload.

use tokio::sync::broadcast;

/// Writes the host may have outstanding before a slow BMC task loses some
/// (the BMC then reports a transmit overrun, as a real UART would). Small,
/// since every slot is allocated up front and a lab has thousands of ports.
const OUTPUT_CHUNKS: usize = 256;
const INPUT_CHUNKS: usize = 64;

/// What a SOL console sent to the host's serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialInput {
    /// Typed bytes, in order, each delivered once.
    Data(Vec<u8>),
    /// The console asked for a serial break.
    Break,
}

/// One node's serial port. Clones share the same port.
#[derive(Debug, Clone)]
pub struct SerialPort {
    /// Host → BMC (→ SOL console).
    output: broadcast::Sender<Vec<u8>>,
    /// SOL console → BMC → host.
    input: broadcast::Sender<SerialInput>,
}

impl Default for SerialPort {
    fn default() -> Self {
        SerialPort {
            output: broadcast::Sender::new(OUTPUT_CHUNKS),
            input: broadcast::Sender::new(INPUT_CHUNKS),
        }
    }
}

impl SerialPort {
    /// Writes bytes as the host would (any bytes, not only text). The BMC
    /// forwards them to the active SOL console; with none, they are lost,
    /// as on a real BMC. Each call is one chunk: more than 256 chunks
    /// written faster than the BMC task runs overrun (the oldest are lost).
    pub fn write(&self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        if !bytes.is_empty() {
            // No receiver only means nobody is listening yet.
            let _ = self.output.send(bytes.to_vec());
        }
    }

    /// Follows everything the host writes from now on: its firmware's
    /// lines, echoes and [`write`](Self::write)s.
    pub fn output(&self) -> broadcast::Receiver<Vec<u8>> {
        self.output.subscribe()
    }

    /// Follows what SOL consoles send the host from now on: typed bytes
    /// (duplicates already removed) and breaks.
    pub fn input(&self) -> broadcast::Receiver<SerialInput> {
        self.input.subscribe()
    }

    /// The BMC hands the host what a console sent.
    pub(crate) fn deliver(&self, input: SerialInput) {
        let _ = self.input.send(input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_reach_subscribers_in_order() {
        let port = SerialPort::default();
        let mut out = port.output();
        let mut typed = port.clone().input();
        port.write(b"");
        port.write([0u8, 255]);
        port.write("login: ");
        port.deliver(SerialInput::Data(b"root".to_vec()));
        port.deliver(SerialInput::Break);
        assert_eq!(out.try_recv().unwrap(), [0, 255]);
        assert_eq!(out.try_recv().unwrap(), b"login: ");
        assert!(out.try_recv().is_err(), "empty writes are dropped");
        assert_eq!(
            typed.try_recv().unwrap(),
            SerialInput::Data(b"root".to_vec())
        );
        assert_eq!(typed.try_recv().unwrap(), SerialInput::Break);
    }
}

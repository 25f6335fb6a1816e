//! dnsmasq's `--log-dhcp` lines to [`DhcpMessage`]s.
// STUB until the parser lands (replaced by the helper's module).
pub struct Parser;
impl Parser {
    pub fn new() -> Parser {
        Parser
    }
    pub fn line(&mut self, _line: &str) -> Vec<crate::timeline::DhcpMessage> {
        Vec::new()
    }
    pub fn flush(&mut self) -> Vec<crate::timeline::DhcpMessage> {
        Vec::new()
    }
}

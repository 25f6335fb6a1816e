//! dnsmasq's `--log-dhcp` lines to [`DhcpMessage`]s.

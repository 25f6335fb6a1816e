//! The embedded servers nodes boot from: HTTP and TFTP over the lab's
//! served roots. Both refuse any path outside their root (`path`).

pub mod http;
pub mod limits;
pub mod path;
pub mod tftp;
pub mod tftp_client;
pub mod tftp_packet;

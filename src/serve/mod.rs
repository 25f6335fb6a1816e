//! The embedded servers nodes boot from: HTTP and TFTP over the lab's
//! served roots. Both refuse any path outside their root (`path`).

pub mod path;

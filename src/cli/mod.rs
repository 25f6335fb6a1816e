pub mod bmc;
pub mod sim;

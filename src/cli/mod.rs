pub mod bmc;
pub mod console;
pub mod sim;

//! A boot's timeline and diagnosis as text (`petitlab why`).

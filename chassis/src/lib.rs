//! The aiods chassis.

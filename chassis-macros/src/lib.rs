//! Attribute macros of the aiods chassis.

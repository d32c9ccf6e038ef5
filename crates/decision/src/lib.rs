//! ferroni-decision

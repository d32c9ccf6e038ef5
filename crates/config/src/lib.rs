//! ferroni-config

//! ferroni-postgres

//! ferroni-api

//! adamant-data

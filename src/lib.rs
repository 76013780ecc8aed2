//! adamant

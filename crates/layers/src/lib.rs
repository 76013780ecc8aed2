//! adamant-layers

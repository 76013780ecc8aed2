//! adamant-optim

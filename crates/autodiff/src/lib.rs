//! adamant-autodiff

//! mapi

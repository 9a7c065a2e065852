//! A zeroed heap buffer with an alignment of its own choosing (a `Vec` cannot
//! ask for one): the Argon2 memory of the key derivation (crypto.rs) and the
//! buffer of direct-I/O writes (backend.rs).

use std::alloc::Layout;
use std::ptr::NonNull;

pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer owns its memory exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// `layout.size()` zero bytes aligned to `layout.align()`; `None` for a
    /// size of 0 or when the allocator has no memory. Zeroing costs nothing
    /// for fresh memory (the allocator knows it is zero).
    pub(crate) fn zeroed(layout: Layout) -> Option<AlignedBuf> {
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
        Some(AlignedBuf { ptr, layout })
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `layout.size()` initialized bytes owned by `self`, borrowed
        // through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// The start, aligned to `layout.align()`.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

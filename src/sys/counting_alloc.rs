//! The test binary's allocator: the system allocator, counting per thread, so a test can measure what one
//! call allocates at most (hostile input must not make perfgate allocate beyond its input's size). Test
//! builds only: the library's unit tests, and tests/fuzz_support, which compiles this same file into the
//! fuzz binary; the `unsafe` of implementing `GlobalAlloc` lives here with the rest of perfgate's.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes this thread holds (allocated minus freed by it), and its peak.
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting per thread (tests run in parallel threads).
struct Counting;

fn held_add(n: usize) {
    // `try_with`: the thread's counters may be gone while it exits.
    let _ = HELD.try_with(|h| {
        let v = h.get().saturating_add(n);
        h.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn held_sub(n: usize) {
    let _ = HELD.try_with(|h| h.set(h.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to `System` with the caller's arguments;
// the counters touch only thread-locals with const initialisers (no
// allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            held_add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            held_add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        held_sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            held_sub(layout.size());
            held_add(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes this thread held at
/// once during it, beyond what it held before.
pub fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = HELD.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, peak.saturating_sub(before))
}

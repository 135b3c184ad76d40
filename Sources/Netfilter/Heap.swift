internal import Glibc

/// The process's malloc heap (glibc).
public enum Heap {
    /// Gives freed heap memory back to the kernel (glibc's `malloc_trim(0)`, which the Glibc module
    /// does not import: looked up by name). glibc otherwise keeps what a large read freed, and the
    /// RSS stays at that read's peak.
    public static func release() {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }  // RTLD_DEFAULT
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
}

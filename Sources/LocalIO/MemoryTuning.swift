import CURing

/// malloc settings for a process that allocates and frees many I/O buffers of up to 32 MiB.
public enum MemoryTuning {
    /// By default glibc serves large allocations with fresh mmaps and trims freed heap, so every
    /// 1 MiB request buffer would fault its pages in again (and the kernel would zero them).
    /// Serving them from the heap and not trimming it lets freed buffers be reused as they are.
    public static func keepLargeBuffersInTheHeap() {
        mallopt(M_MMAP_THRESHOLD, 64 << 20)
        mallopt(M_TRIM_THRESHOLD, 512 << 20)
    }
}

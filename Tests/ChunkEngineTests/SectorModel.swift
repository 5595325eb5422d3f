/// Per 512-byte sector, the contents a crash may leave. On the volume: those as of the last
/// flush and those written since. In the object store, as a store-only recover reads it: those
/// as of the last flush whose upload was waited for (`flush --wait-upload`) and those written
/// since. A write enters the model before it is sent (it may land at any instant after), a
/// flush once it completes.
struct SectorModel {
    static let sector = 512
    var current: [UInt8]
    var stable: [Set<UInt64>]
    var since: [Set<UInt64>]
    var uploaded: [Set<UInt64>]
    var sinceUploaded: [Set<UInt64>]

    init(size: Int) {
        current = [UInt8](repeating: 0, count: size)
        let zero = Self.hash(current[0..<Self.sector])
        stable = [Set<UInt64>](repeating: [zero], count: size / Self.sector)
        since = [Set<UInt64>](repeating: [], count: size / Self.sector)
        uploaded = stable
        sinceUploaded = since
    }

    static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    private func sectors(_ range: Range<Int>) -> Range<Int> {
        (range.lowerBound / Self.sector)..<((range.upperBound + Self.sector - 1) / Self.sector)
    }

    private func content(_ sector: Int) -> ArraySlice<UInt8> {
        current[(sector * Self.sector)..<((sector + 1) * Self.sector)]
    }

    mutating func write(_ offset: Int, _ data: [UInt8]) {
        current.replaceSubrange(offset..<(offset + data.count), with: data)
        for sector in sectors(offset..<(offset + data.count)) {
            let written = Self.hash(content(sector))
            since[sector].insert(written)
            sinceUploaded[sector].insert(written)
        }
    }

    /// A flush of everything, or (thin FUA) of one range.
    mutating func flush(_ range: Range<Int>? = nil) {
        for sector in range.map(sectors) ?? 0..<stable.count where range != nil || !since[sector].isEmpty {
            stable[sector] = [Self.hash(content(sector))]
            since[sector] = []
        }
    }

    /// A flush whose upload was waited for.
    mutating func flushUploaded() {
        flush()
        for sector in 0..<uploaded.count where !sinceUploaded[sector].isEmpty {
            uploaded[sector] = [Self.hash(content(sector))]
            sinceUploaded[sector] = []
        }
    }

    /// What is wrong with `read`, the whole volume as read after a crash (from the volume, or
    /// `fromStore` alone).
    func violations(_ read: [UInt8], fromStore: Bool = false) -> [String] {
        var problems: [String] = []
        let (old, new) = fromStore ? (uploaded, sinceUploaded) : (stable, since)
        for sector in 0..<stable.count {
            let found = Self.hash(read[(sector * Self.sector)..<((sector + 1) * Self.sector)])
            if !old[sector].contains(found) && !new[sector].contains(found) {
                let kind = new[sector].isEmpty ? "unchanged since" : "changed since"
                let flush = fromStore ? "the last flush --wait-upload" : "the last flush"
                problems.append(
                    "sector at \(sector * Self.sector) (\(kind) \(flush)) holds content never written there")
            }
        }
        return problems
    }

    /// Checks the whole volume as read after a crash, then takes it as the new truth.
    mutating func check(_ read: [UInt8]) -> [String] {
        let problems = violations(read)
        for sector in 0..<stable.count {
            let found = Self.hash(read[(sector * Self.sector)..<((sector + 1) * Self.sector)])
            stable[sector] = [found]
            since[sector] = []
            sinceUploaded[sector].insert(found)
        }
        current = read
        return problems
    }
}

/// Sizes as people write them: "10G", "1T", "512M", "64K", "4096" (binary units; an optional
/// trailing "B" or "iB" is accepted).
public enum ByteSize {
    /// Parses a size.
    /// - Throws: `GatewayError.invalid` with the accepted forms.
    public static func parse(_ text: String) throws(GatewayError) -> UInt64 {
        var digits = text.trimmingCharacters(in: " ").uppercased()
        for suffix in ["IB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits.removeLast(suffix.count)
        }
        var shift: UInt64 = 0
        if let unit = digits.last, let power = "KMGTPE".firstIndex(of: unit) {
            shift = 10 * UInt64("KMGTPE".distance(from: "KMGTPE".startIndex, to: power) + 1)
            digits.removeLast()
        }
        guard let value = UInt64(digits), value > 0 else {
            throw GatewayError(
                .invalid,
                "'\(text)' is not a size; write a positive number with an optional unit, e.g. 4096, 64K, 10G, 1T")
        }
        let (result, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw GatewayError(.invalid, "size '\(text)' is too large") }
        return result
    }

    /// A size in the largest binary unit that keeps it readable, e.g. "1.5G", "64K", "512".
    public static func format(_ bytes: UInt64) -> String {
        let units = ["", "K", "M", "G", "T", "P", "E"]
        var unit = 0
        var value = Double(bytes)
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes)" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded))\(units[unit])" : "\(rounded)\(units[unit])"
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}

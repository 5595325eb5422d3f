import CISAL

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as in iSCSI), the checksum of every tape
/// record and header and of every unencrypted object frame: Intel's ISA-L `crc32_iscsi` (Debian's
/// libisal), which uses the processor's CRC and carry-less multiply instructions where it has
/// them and a table otherwise.
public enum CRC32C {
    /// The checksum of `bytes`, continuing from `crc` (the checksum of what came before them).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        // ISA-L takes and returns the register without the final inversion, and an Int32 length.
        var register = ~crc
        var rest = bytes
        while !rest.isEmpty {
            let piece = min(rest.count, 1 << 30)
            register = crc32_iscsi(
                UnsafeMutablePointer(mutating: rest.baseAddress!.assumingMemoryBound(to: UInt8.self)), Int32(piece),
                register)
            rest = UnsafeRawBufferPointer(rebasing: rest[piece...])
        }
        return ~register
    }

    /// The checksum of a byte sequence.
    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The checksum of two byte sequences one after the other, from the checksum of each and the
    /// second's length, without their bytes: one pass over some bytes can then serve two
    /// checksums that cover them (a frame's, and the whole object's on its way to the store).
    /// Not in ISA-L, so by hand: the first checksum times x^(8 * length) modulo the polynomial,
    /// plus the second (the conditioning of both cancels out).
    public static func combine(_ first: UInt32, _ second: UInt32, secondLength: Int) -> UInt32 {
        precondition(secondLength >= 0, "a length is not negative")
        return multiply(first, xToThe8Times(secondLength)) ^ second
    }

    /// The polynomial, bit-reflected: bit 31 is the coefficient of x^0, bit 0 that of x^31.
    private static let polynomial: UInt32 = 0x82F6_3B78

    /// x^0 in the reflected representation.
    private static let one: UInt32 = 1 << 31

    /// a * b modulo the polynomial.
    private static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var product: UInt32 = 0
        var factor = b
        var bit = one
        while bit != 0 {
            if a & bit != 0 { product ^= factor }
            bit >>= 1
            // factor *= x: a shift toward higher powers, folding x^32 back in.
            factor = factor & 1 != 0 ? (factor >> 1) ^ polynomial : factor >> 1
        }
        return product
    }

    /// x^(2^k) modulo the polynomial for k in 0..<67: x^(8n) is the product of those whose k-3
    /// are the bits set in n (a length has at most 64 bits).
    private static let powersOfXSquared: [UInt32] = {
        var powers: [UInt32] = [one >> 1]
        for _ in 1..<67 { powers.append(multiply(powers[powers.count - 1], powers[powers.count - 1])) }
        return powers
    }()

    /// x^(8 * bytes) modulo the polynomial.
    private static func xToThe8Times(_ bytes: Int) -> UInt32 {
        var power = one
        var rest = UInt64(bytes)
        var k = 3
        while rest != 0 {
            if rest & 1 != 0 { power = multiply(power, powersOfXSquared[k]) }
            rest >>= 1
            k += 1
        }
        return power
    }
}

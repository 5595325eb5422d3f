import Codecs
import Foundation
import NIOCore

/// How an object's bytes are vouched for on their way to the store: a PUT of object data goes
/// with `x-amz-content-sha256: UNSIGNED-PAYLOAD` and the body's CRC32C in
/// `x-amz-checksum-crc32c`, which the store checks before it keeps the object (S3 answers
/// BadDigest otherwise), as AWS's own SDKs do. The signature still covers the checksum header,
/// and a CRC32C costs a small fraction of the SHA-256 a signed payload needs, on both sides.
public enum PayloadChecksum {
    /// The header that carries the checksum.
    public static let header = "x-amz-checksum-crc32c"
    /// What x-amz-content-sha256 says of a payload vouched for by its checksum instead.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// The CRC32C of a body sent in `pieces`.
    public static func crc32c(_ pieces: [ByteBuffer]) -> UInt32 {
        pieces.reduce(UInt32(0)) { crc, piece in
            piece.withUnsafeReadableBytes { CRC32C.checksum($0, continuing: crc) }
        }
    }

    /// The header's value for a body of CRC32C `crc`: big-endian, in base64.
    public static func base64(_ crc: UInt32) -> String {
        withUnsafeBytes(of: crc.bigEndian) { Data($0) }.base64EncodedString()
    }

    /// The header's value for a body sent in `pieces`.
    public static func crc32cBase64(_ pieces: [ByteBuffer]) -> String { base64(crc32c(pieces)) }
}

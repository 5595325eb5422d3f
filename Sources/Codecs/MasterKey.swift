import Crypto
import Foundation
import _CryptoExtras

/// The key that wraps every data key (and seals the manifests): 256 bits from a key file, or
/// derived from a passphrase with scrypt (memory-hard: 32 MiB per try by default). Data
/// keys are wrapped with AES-256-GCM under a random nonce, bound to what they belong to (the
/// volume's uuid), so that a wrapped key cannot be moved to another volume; a wrong master key
/// fails to unwrap them, which is how a wrong key is told at start.
public struct MasterKey: Sendable {
    let bytes: [UInt8]

    /// A short fingerprint, shown so that operators can tell keys apart without seeing them.
    public var id: UInt32 { DataKey(key: SymmetricKey(data: bytes)).id }

    /// A key from a key file's contents: 32 raw bytes, or 64 hexadecimal digits (a trailing
    /// newline allowed).
    /// - Throws: `ObjectFormatError(.invalidSettings)` for anything else.
    public init(keyFile contents: [UInt8]) throws(ObjectFormatError) {
        if contents.count == 32 {
            bytes = contents
            return
        }
        let text = String(decoding: contents, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.count == 64, let decoded = Self.hex(text) else {
            throw ObjectFormatError(
                .invalidSettings,
                "a key file holds 32 bytes, or 64 hexadecimal digits; this one holds \(contents.count) bytes (make one with `blockgate key generate`)"
            )
        }
        bytes = decoded
    }

    /// The scrypt settings a passphrase is stretched with, and the salt (kept beside the store).
    public struct Stretching: Codable, Sendable, Equatable {
        /// scrypt's N (a power of two), r and p.
        public var rounds: Int
        public var blockSize: Int
        public var parallelism: Int
        public var salt: [UInt8]

        /// New settings with a random 16-byte salt: N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s).
        public static func fresh() -> Stretching {
            Stretching(
                rounds: 1 << 15, blockSize: 8, parallelism: 1,
                salt: SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) })
        }
    }

    /// The key a passphrase gives with `stretching`.
    /// - Throws: `ObjectFormatError(.invalidSettings)` for an empty passphrase or bad settings.
    public init(passphrase: [UInt8], stretching: Stretching) throws(ObjectFormatError) {
        guard !passphrase.isEmpty else { throw ObjectFormatError(.invalidSettings, "the passphrase is empty") }
        do {
            let key = try KDF.Scrypt.deriveKey(
                from: passphrase, salt: stretching.salt, outputByteCount: 32, rounds: stretching.rounds,
                blockSize: stretching.blockSize, parallelism: stretching.parallelism)
            bytes = key.withUnsafeBytes { Array($0) }
        } catch {
            throw ObjectFormatError(.invalidSettings, "scrypt refused its settings: \(error)")
        }
    }

    /// Eight bytes that tell whether a key is the one a store was set up with, and nothing more.
    public var check: [UInt8] {
        Array(
            HMAC<SHA256>.authenticationCode(for: Data("blockgate key check".utf8), using: SymmetricKey(data: bytes))
                .prefix(8))
    }

    /// A fresh random key, as the 64 hexadecimal digits of a key file.
    public static func generateKeyFile() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() } + "\n"
    }

    private static func hex(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let byte = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    /// `key` sealed for `scope`: a 12-byte nonce, the 32 encrypted bytes and the 16-byte tag.
    public func wrap(_ key: DataKey, scope: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(
            key.bytes, using: SymmetricKey(data: bytes), authenticating: Self.context(scope))
        return Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
    }

    /// The data key `wrapped` holds for `scope`.
    /// - Throws: `ObjectFormatError(.wrongKey)` when this master key did not wrap it (or it was
    ///   wrapped for something else, or damaged).
    public func unwrap(_ wrapped: [UInt8], scope: String) throws(ObjectFormatError) -> DataKey {
        do {
            guard wrapped.count == 60 else { throw ObjectFormatError(.corrupt, "") }
            let box = try AES.GCM.SealedBox(
                nonce: try AES.GCM.Nonce(data: wrapped[0..<12]), ciphertext: wrapped[12..<44], tag: wrapped[44..<60])
            let opened = try AES.GCM.open(box, using: SymmetricKey(data: bytes), authenticating: Self.context(scope))
            return DataKey(bytes: opened)!
        } catch {
            throw ObjectFormatError(
                .wrongKey, "the data key of '\(scope)' was not wrapped by this master key (id \(String(id, radix: 16)))"
            )
        }
    }

    private static func context(_ scope: String) -> Data { Data("blockgate data key\0\(scope)".utf8) }

    /// The key that seals manifests and other records of the store itself (not of one volume).
    public var recordKey: DataKey {
        DataKey(
            key: HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: bytes), salt: Array("blockgate records v1".utf8), info: [],
                outputByteCount: 32))
    }
}

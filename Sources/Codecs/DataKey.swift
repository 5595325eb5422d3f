import Crypto
import Foundation

/// The secret that encrypts one volume's (or tape pool's) objects: 256 random bits, never stored
/// in the clear (it is kept wrapped by the master key, `MasterKey.wrap`). Each object is sealed
/// with a key of its own derived from it (`objectKey(scope:identity:)`).
public struct DataKey: Sendable {
    /// The key's bytes (`SymmetricKey` is not `Sendable` in this swift-crypto).
    let bytes: [UInt8]
    /// A short fingerprint stored in each object's header, so that an object sealed with another
    /// key is named as such rather than reported as damaged.
    public let id: UInt32

    /// A fresh random key.
    public static func generate() -> DataKey { DataKey(key: SymmetricKey(size: .bits256)) }

    /// A key from its 32 bytes.
    public init?(bytes: some DataProtocol) {
        guard bytes.count == 32 else { return nil }
        self.init(key: SymmetricKey(data: Data(bytes)))
    }

    init(key: SymmetricKey) {
        self.bytes = key.withUnsafeBytes { Array($0) }
        let digest = SHA256.hash(data: Data("blockgate key id".utf8) + bytes)
        self.id = digest.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).littleEndian }
    }

    /// The key that seals one object: HKDF-SHA256 of the data key over the object's scope (the
    /// volume's uuid) and identity, so that no two objects share a key, and a frame's number is
    /// all its nonce needs to hold (docs/object-format.md, "Keys and nonces").
    func objectKey(scope: [UInt8], identity: ObjectIdentity) -> SymmetricKey {
        var info = scope
        info.append(0)
        info.append(identity.kind.rawValue)
        withUnsafeBytes(of: identity.first.littleEndian) { info.append(contentsOf: $0) }
        withUnsafeBytes(of: identity.second.littleEndian) { info.append(contentsOf: $0) }
        return HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: bytes), salt: Array("blockgate object v1".utf8), info: info,
            outputByteCount: 32)
    }
}

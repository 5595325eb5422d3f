import Crypto
import Foundation

/// The AEAD that seals each frame of an object, or none (frames then carry a CRC-32C).
/// Parsed from and shown as `off`, `aes-256-gcm` or `chacha20-poly1305`.
public enum Cipher: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case off = 0
    case aes256GCM = 1
    case chaCha20Poly1305 = 2

    /// Parses `off`, `aes-256-gcm` or `chacha20-poly1305`; nil for anything else.
    public init?(parsing text: String) {
        guard let cipher = Self.allCases.first(where: { $0.description == text }) else { return nil }
        self = cipher
    }

    public var description: String {
        switch self {
        case .off: "off"
        case .aes256GCM: "aes-256-gcm"
        case .chaCha20Poly1305: "chacha20-poly1305"
        }
    }

    /// Bytes each frame carries after its payload: the authentication tag, or the CRC-32C.
    public var trailerSize: Int { self == .off ? 4 : 16 }

    /// Seals `plaintext`: the ciphertext (as long as the plaintext) followed by the tag.
    func seal(_ plaintext: UnsafeRawBufferPointer, key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8])
        throws -> Data
    {
        switch self {
        case .off:
            preconditionFailure("no cipher seals")
        case .aes256GCM:
            let box = try AES.GCM.seal(
                plaintext, using: key, nonce: try AES.GCM.Nonce(data: nonce), authenticating: aad)
            return box.ciphertext + box.tag
        case .chaCha20Poly1305:
            let box = try ChaChaPoly.seal(
                plaintext, using: key, nonce: try ChaChaPoly.Nonce(data: nonce), authenticating: aad)
            return box.ciphertext + box.tag
        }
    }

    /// Opens ciphertext followed by its tag; throws when the tag does not match.
    func open(_ sealed: UnsafeRawBufferPointer, key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8])
        throws -> Data
    {
        let ciphertext = UnsafeRawBufferPointer(rebasing: sealed[..<(sealed.count - 16)])
        let tag = UnsafeRawBufferPointer(rebasing: sealed[(sealed.count - 16)...])
        switch self {
        case .off:
            preconditionFailure("no cipher opens")
        case .aes256GCM:
            let box = try AES.GCM.SealedBox(nonce: try AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
            return try AES.GCM.open(box, using: key, authenticating: aad)
        case .chaCha20Poly1305:
            let box = try ChaChaPoly.SealedBox(
                nonce: try ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
            return try ChaChaPoly.open(box, using: key, authenticating: aad)
        }
    }
}

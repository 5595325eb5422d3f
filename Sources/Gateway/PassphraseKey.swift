import Codecs
import Foundation
import NIOCore
import ObjectStore

/// A master key from a passphrase: scrypt over the passphrase with the store's salt. The salt and
/// settings live beside the data, as `keys/passphrase.json` in the object store (so that a new
/// gateway on the same store derives the same key) with a copy in the data directory (so that a
/// start does not need the store), with a check value that tells a wrong passphrase at start.
enum PassphraseKey {
    /// What is kept: the scrypt settings and salt, and the key's check value.
    struct Record: Codable, Equatable {
        var stretching: MasterKey.Stretching
        var check: [UInt8]
    }

    static let objectKey = "keys/passphrase.json"

    /// The master key the passphrase in `passphraseFile` gives; the first start on a store sets
    /// it up (a fresh salt).
    /// - Throws: `GatewayError.invalid` for an unreadable file or a wrong passphrase, `.failed`
    ///   when the salt is neither here nor reachable in the store.
    static func masterKey(passphraseFile: String, dataDirectory: String, store: any ObjectStore)
        async throws(GatewayError) -> MasterKey
    {
        let passphrase: [UInt8]
        do {
            var text = try String(contentsOfFile: passphraseFile, encoding: .utf8)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            passphrase = Array(text.utf8)
        } catch {
            throw GatewayError(
                .invalid, "cannot read the passphrase file \(passphraseFile): \(error.localizedDescription)")
        }
        let local = dataDirectory + "/passphrase.json"
        var record = try? JSONDecoder().decode(Record.self, from: Data(contentsOf: URL(fileURLWithPath: local)))
        let stored = record == nil
        if record == nil { record = try await fetch(from: store) }
        do {
            guard let record else {
                let stretching = MasterKey.Stretching.fresh()
                let key = try MasterKey(passphrase: passphrase, stretching: stretching)
                let created = Record(stretching: stretching, check: key.check)
                try await put(created, in: store)
                try save(created, at: local)
                return key
            }
            let key = try MasterKey(passphrase: passphrase, stretching: record.stretching)
            guard key.check == record.check else {
                throw GatewayError(
                    .invalid,
                    "the passphrase in \(passphraseFile) is not the one this object store was set up with (\(objectKey))"
                )
            }
            if !stored { try save(record, at: local) }
            return key
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError(.failed, "cannot set up the master key from the passphrase: \(error)")
        }
    }

    private static func fetch(from store: any ObjectStore) async throws(GatewayError) -> Record? {
        do {
            let data = try await store.get(try ObjectKey(objectKey), range: nil)
            return try JSONDecoder().decode(Record.self, from: Data(data.readableBytesView))
        } catch let error as ObjectStoreError where error.kind == .notFound {
            return nil
        } catch {
            throw GatewayError(
                .failed,
                "cannot read \(objectKey) from the object store, which a passphrase needs at the first start here: \(error)"
            )
        }
    }

    private static func put(_ record: Record, in store: any ObjectStore) async throws {
        var data = ByteBuffer()
        data.writeBytes(try JSONEncoder().encode(record))
        try await store.put(try ObjectKey(objectKey), data: data)
    }

    private static func save(_ record: Record, at path: String) throws {
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

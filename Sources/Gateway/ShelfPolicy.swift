import ObjectStore

/// What a tape pool asks of the object store when its tapes go to the shelf (config
/// `library.pools.NAME`): a colder storage class for their data objects, Object Lock so that
/// the store itself refuses to delete them before their retention ends, and how long a
/// restore from a cold class keeps them readable.
public struct ShelfPolicy: Sendable, Equatable {
    /// `x-amz-storage-class` of the data objects once exported; nil: left where they are.
    public var storageClass: String?
    /// Lock the data objects (COMPLIANCE mode) until the tape's retention ends; the bucket must
    /// have Object Lock (a bucket blockgate creates gets it when a pool asks for it).
    public var objectLock = false
    /// Days a restored object stays readable.
    public var restoreDays = 7
    /// How long a retrieval takes, as `tape retrieve` says it; nil: AWS's usual time for the class.
    public var retrievalTime: String?

    public init() {}

    /// Whether the shelf must be an S3 store for this policy.
    public var needsArchivingStore: Bool { storageClass != nil || objectLock }

    /// What `tape retrieve` says of a retrieval from `storageClass`.
    func retrievalNote(_ storageClass: String, restoring objects: Int) -> String {
        let time = retrievalTime ?? ColdStorageClass.typicalRetrieval(storageClass) ?? "a while"
        return "its data is in the \(storageClass) storage class: a restore of its \(objects) object(s) was "
            + "requested; a retrieval from \(storageClass) may take \(time), and reads fail with I/O errors until then"
    }
}

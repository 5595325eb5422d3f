import Codecs

/// How a cached volume's chunk objects are compressed and encrypted: the gateway's defaults for
/// new volumes (config `object_format`), and what `volume create` may ask for instead.
public struct ObjectFormatChoice: Sendable, Equatable {
    public var compression: Compression
    /// nil: AES-256-GCM when a master key is configured, none otherwise.
    public var cipher: Cipher?

    public init(compression: Compression = .off, cipher: Cipher? = nil) {
        self.compression = compression
        self.cipher = cipher
    }

    /// What one `volume create` asks for; nil fields take the defaults.
    public struct Request: Sendable, Equatable {
        public var compression: Compression?
        public var cipher: Cipher?

        public init(compression: Compression? = nil, cipher: Cipher? = nil) {
            self.compression = compression
            self.cipher = cipher
        }
    }
}

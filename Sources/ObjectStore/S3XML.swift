import Glibc

/// The XML documents of the S3 subset used here, read and written by hand: they are small,
/// flat, and of fixed shape.
enum S3XML {
    /// Escapes text for an element's content.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// Undoes `escape` (and numeric character references).
    static func unescape(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var result = ""
        var rest = text
        while let ampersand = rest.firstIndex(of: "&") {
            result += rest[..<ampersand]
            guard let semicolon = rest[ampersand...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: ampersand)..<semicolon]
            switch entity {
            case "amp": result += "&"
            case "lt": result += "<"
            case "gt": result += ">"
            case "quot": result += "\""
            case "apos": result += "'"
            default:
                let number =
                    entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : UInt32(entity.dropFirst())
                if let number, let scalar = Unicode.Scalar(number) { result.unicodeScalars.append(scalar) }
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return result + rest
    }

    /// The contents of each `<tag>…</tag>` in `xml`, in order.
    static func elements(_ tag: String, in xml: Substring) -> [Substring] {
        var found: [Substring] = []
        var rest = xml
        while let open = rest.range(of: "<\(tag)>"), let close = rest[open.upperBound...].range(of: "</\(tag)>") {
            found.append(rest[open.upperBound..<close.lowerBound])
            rest = rest[close.upperBound...]
        }
        return found
    }

    /// The text of the first `<tag>` in `xml`.
    static func text(_ tag: String, in xml: Substring) -> String? {
        elements(tag, in: xml).first.map(unescape)
    }
}

/// A ListObjectsV2 answer.
public struct ListBucketResult: Equatable, Sendable {
    public var objects: [ObjectInfo]
    public var isTruncated: Bool
    public var nextContinuationToken: String?

    public init(objects: [ObjectInfo], isTruncated: Bool, nextContinuationToken: String?) {
        self.objects = objects
        self.isTruncated = isTruncated
        self.nextContinuationToken = nextContinuationToken
    }

    /// Parses the document.
    /// - Throws: `ObjectStoreError.invalidResponse` when it is not a ListBucketResult.
    public init(xml: String) throws(ObjectStoreError) {
        let document = Substring(xml)
        guard document.contains("<ListBucketResult") else {
            throw ObjectStoreError(.invalidResponse, "a listing answered without a ListBucketResult")
        }
        var objects: [ObjectInfo] = []
        for entry in S3XML.elements("Contents", in: document) {
            guard let key = S3XML.text("Key", in: entry), let size = S3XML.text("Size", in: entry).flatMap(UInt64.init)
            else { throw ObjectStoreError(.invalidResponse, "a listing entry lacks its Key or Size") }
            objects.append(ObjectInfo(key: key, size: size))
        }
        self.objects = objects
        isTruncated = S3XML.text("IsTruncated", in: document) == "true"
        nextContinuationToken = S3XML.text("NextContinuationToken", in: document)
    }

    /// The document, as a server sends it.
    public func xml(bucket: String, prefix: String) -> String {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        xml += "<Name>\(S3XML.escape(bucket))</Name><Prefix>\(S3XML.escape(prefix))</Prefix>"
        xml += "<KeyCount>\(objects.count)</KeyCount><IsTruncated>\(isTruncated)</IsTruncated>"
        if let nextContinuationToken {
            xml += "<NextContinuationToken>\(S3XML.escape(nextContinuationToken))</NextContinuationToken>"
        }
        // Clients such as the AWS CLI expect a modification time; objects here carry none, so
        // the time of the listing stands in.
        let stamp = SigV4Signer.amzDate(time(nil))
        let modified =
            "\(stamp.prefix(4))-\(stamp.dropFirst(4).prefix(2))-\(stamp.dropFirst(6).prefix(2))T"
            + "\(stamp.dropFirst(9).prefix(2)):\(stamp.dropFirst(11).prefix(2)):\(stamp.dropFirst(13).prefix(2)).000Z"
        for object in objects {
            xml +=
                "<Contents><Key>\(S3XML.escape(object.key))</Key><LastModified>\(modified)</LastModified>"
                + "<Size>\(object.size)</Size></Contents>"
        }
        return xml + "</ListBucketResult>"
    }
}

/// The `<Error>` document of a failed S3 request.
public struct S3ErrorBody: Equatable, Sendable {
    public var code: String
    public var message: String?

    public init(code: String, message: String?) {
        self.code = code
        self.message = message
    }

    /// Parses the document, or returns nil when it is not an S3 error.
    public init?(xml: String) {
        let document = Substring(xml)
        guard let code = S3XML.text("Code", in: document) else { return nil }
        self.code = code
        self.message = S3XML.text("Message", in: document)
    }

    /// The document, as a server sends it.
    public var xml: String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(S3XML.escape(code))</Code>"
            + "<Message>\(S3XML.escape(message ?? ""))</Message></Error>"
    }
}

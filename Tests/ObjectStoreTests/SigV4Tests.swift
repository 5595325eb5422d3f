import NIOCore
import ObjectStore
import Testing

/// The signer against AWS's published vectors: the generic SigV4 test suite (service "service",
/// 2015-08-30) and the S3 API reference examples (2013-05-24).
@Suite struct SigV4Tests {
    static let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    static let suite = SigV4Signer(
        credentials: .init(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    static let s3 = SigV4Signer(
        credentials: .init(
            accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "s3")

    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let request: SigV4Signer.Request
        let canonical: String
        let stringToSignHash: String
        let signature: String
        var testDescription: String { name }
    }

    static func suiteRequest(
        _ method: String, query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = []
    ) -> SigV4Signer.Request {
        SigV4Signer.Request(
            method: method, encodedPath: "/", query: query,
            headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")] + headers,
            payloadHash: emptyHash)
    }

    static let suiteVectors: [Vector] = [
        Vector(
            name: "get-vanilla", request: suiteRequest("GET"),
            canonical:
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(emptyHash)",
            stringToSignHash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(
            name: "get-vanilla-query-order-key-case",
            request: suiteRequest("GET", query: [("Param2", "value2"), ("Param1", "value1")]),
            canonical:
                "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(emptyHash)",
            stringToSignHash: "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(
            name: "get-vanilla-query-unreserved",
            request: suiteRequest(
                "GET",
                query: [
                    (
                        "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                        "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    )
                ]),
            canonical:
                "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(emptyHash)",
            stringToSignHash: "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
        Vector(
            name: "post-vanilla", request: suiteRequest("POST"),
            canonical:
                "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(emptyHash)",
            stringToSignHash: "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(
            name: "get-header-value-trim",
            request: suiteRequest("GET", headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")]),
            canonical:
                "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n\(emptyHash)",
            stringToSignHash: "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ]

    static func s3Request(
        _ method: String, path: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [], payloadHash: String = emptyHash
    ) -> SigV4Signer.Request {
        SigV4Signer.Request(
            method: method, encodedPath: path, query: query,
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
                ("x-amz-content-sha256", payloadHash),
            ] + headers, payloadHash: payloadHash)
    }

    static let putHash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    static let s3Vectors: [Vector] = [
        Vector(
            name: "GET object with range",
            request: s3Request("GET", path: "/test.txt", headers: [("Range", "bytes=0-9")]),
            canonical:
                "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:\(emptyHash)\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\(emptyHash)",
            stringToSignHash: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
            signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        Vector(
            name: "PUT object",
            request: s3Request(
                "PUT", path: "/" + SigV4Signer.uriEncode("test$file.text", keepSlash: true),
                headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                payloadHash: putHash),
            canonical:
                "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:\(putHash)\nx-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\ndate;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n\(putHash)",
            stringToSignHash: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
            signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
        Vector(
            name: "GET bucket lifecycle", request: s3Request("GET", path: "/", query: [("lifecycle", "")]),
            canonical:
                "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:\(emptyHash)\nx-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n\(emptyHash)",
            stringToSignHash: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
            signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        Vector(
            name: "GET bucket list", request: s3Request("GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")]),
            canonical:
                "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:\(emptyHash)\nx-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n\(emptyHash)",
            stringToSignHash: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
            signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ]

    @Test(arguments: suiteVectors)
    func genericSuite(_ vector: Vector) {
        check(vector, signer: Self.suite, amzDate: "20150830T123600Z")
    }

    @Test(arguments: s3Vectors)
    func s3Examples(_ vector: Vector) {
        check(vector, signer: Self.s3, amzDate: "20130524T000000Z")
    }

    private func check(_ vector: Vector, signer: SigV4Signer, amzDate: String) {
        let canonical = signer.canonicalRequest(vector.request)
        #expect(canonical == vector.canonical)
        let toSign = signer.stringToSign(canonicalRequest: canonical, amzDate: amzDate)
        #expect(toSign.split(separator: "\n").last.map(String.init) == vector.stringToSignHash)
        #expect(signer.signature(for: vector.request, amzDate: amzDate) == vector.signature)
    }

    @Test func authorizationHeaderNamesCredentialScopeAndHeaders() {
        let header = Self.suite.authorization(for: Self.suiteVectors[0].request, amzDate: "20150830T123600Z")
        #expect(
            header
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                + "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        )
    }

    @Test func amzDateIsUTC() {
        #expect(SigV4Signer.amzDate(1_440_938_160) == "20150830T123600Z")
        #expect(SigV4Signer.uriEncode("a b/ü", keepSlash: true) == "a%20b/%C3%BC")
        #expect(SigV4Signer.uriEncode("a/b") == "a%2Fb")
    }

    /// A body's payload hash, taken where its bytes lie: the S3 reference's PUT example, and only
    /// a buffer's readable bytes (a slice of a larger one).
    @Test func payloadHashOfABufferIsTheHashOfItsReadableBytes() {
        var buffer = ByteBuffer(string: "xxWelcome to Amazon S3.yy")
        buffer.moveReaderIndex(forwardBy: 2)
        buffer.moveWriterIndex(to: buffer.writerIndex - 2)
        #expect(
            SigV4Signer.sha256Hex(buffer) == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        #expect(SigV4Signer.sha256Hex(ByteBuffer()) == Self.emptyHash)
        #expect(
            SigV4Signer.sha256Hex(pieces: [
                ByteBuffer(string: "Welcome to "), ByteBuffer(), ByteBuffer(string: "Amazon S3."),
            ])
                == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        #expect(SigV4Signer.sha256Hex(pieces: []) == Self.emptyHash)
    }

    /// One signer signing on different days: the signing key it keeps from the last day it
    /// signed on is never used for another (each day's published signature comes out again).
    @Test func aSignerThatSignsOnAnotherDayUsesThatDaysKey() {
        let signer = SigV4Signer(credentials: Self.s3.credentials, region: Self.s3.region, service: Self.s3.service)
        let vector = Self.s3Vectors[0]
        let published = { signer.signature(for: vector.request, amzDate: "20130524T000000Z") }
        #expect(published() == vector.signature)
        let nextDay = signer.signature(for: vector.request, amzDate: "20130525T000000Z")
        #expect(nextDay != vector.signature)
        #expect(published() == vector.signature)
        #expect(signer.signature(for: vector.request, amzDate: "20130525T000000Z") == nextDay)
    }
}

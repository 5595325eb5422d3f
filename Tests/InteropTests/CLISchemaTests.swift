import Foundation
import Testing

/// Every admin command once in text and once with --json against a daemon started from a config
/// file; each JSON answer is checked against docs/cli-schema.json, the documented schema.
@Suite struct CLISchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// A command run in text with `text` and in JSON with `json` (different arguments where the
    /// command changes something, so that both runs succeed).
    struct Step {
        let schema: String
        let text: [String]
        let json: [String]

        init(_ schema: String, _ text: [String], json: [String]? = nil) {
            self.schema = schema
            self.text = text
            self.json = json ?? text
        }
    }

    static let steps: [Step] = [
        Step("status", ["status"]),
        Step(
            "volume create", ["volume", "create", "v1", "--size", "16M"],
            json: ["volume", "create", "v2", "--size", "16M", "--kind", "cached", "--compression", "zstd"]),
        Step("volume list", ["volume", "list"]),
        Step("volume info", ["volume", "info", "v2"]),
        Step("volume flush", ["volume", "flush", "v2", "--wait-upload"]),
        Step("cache status", ["cache", "status"]),
        Step(
            "tape create", ["tape", "create", "TEXT0001", "--size", "16M"],
            json: ["tape", "create", "--prefix", "JSON", "--count", "2", "--size", "16M"]),
        Step("tape list", ["tape", "list"]),
        Step("tape info", ["tape", "info", "JSON0001"]),
        Step(
            "tape load", ["tape", "load", "TEXT0001", "--drive", "1"],
            json: ["tape", "load", "JSON0001", "--drive", "0"]),
        Step("drive status", ["drive", "status", "0"]),
        Step("drive weof", ["drive", "weof", "0"]),
        Step("drive rewind", ["drive", "rewind", "0"]),
        Step("drive fsf", ["drive", "fsf", "0"]),
        Step("drive bsf", ["drive", "bsf", "0"]),
        Step("drive eod", ["drive", "eod", "0"]),
        Step("drive erase", ["drive", "erase", "0"]),
        Step("library status", ["library", "status"]),
        Step("tape eject", ["tape", "eject", "1", "--slot", "9"], json: ["tape", "eject", "0"]),
        Step(
            "tape move", ["tape", "move", "TEXT0001", "--station"], json: ["tape", "move", "JSON0002", "--slot", "7"]),
        Step("tape export", ["tape", "export", "TEXT0001"], json: ["tape", "export", "JSON0002"]),
        Step("tape list", ["tape", "list", "--shelf"]),
        Step("tape retrieve", ["tape", "retrieve", "TEXT0001"], json: ["tape", "retrieve", "JSON0002"]),
        Step("reload", ["reload"]),
        Step(
            "key rotate", ["key", "rotate", "--new-key-file", "@DIR@/second.key"],
            json: ["key", "rotate", "--new-key-file", "@DIR@/third.key"]),
    ]

    @Test func everyCommandAnswersInTextAndInJSONMatchingItsSchema() async throws {
        let schemaData = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/docs/cli-schema.json"))
        let document = try #require(try JSONSerialization.jsonObject(with: schemaData) as? [String: Any])
        let commands = try #require(document["commands"] as? [String: Any])
        let validator = SchemaValidator(document: document)

        let directory = NSTemporaryDirectory() + "blockgate-cli-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/blockgate.yaml"
        for key in ["first", "second", "third"] {
            let generated = try await Tool.run([Tool.blockgate, "key", "generate", "\(directory)/\(key).key"])
            #expect(generated.status == 0, "\(generated.errors)")
        }
        try "data_dir: \(directory)\nlog_level: warning\nobjects:\n  key_file: \(directory)/first.key\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = DaemonProcess(directory: directory, arguments: ["--config", config])
        try await daemon.start()
        let admin = ["--admin-socket", daemon.adminSocketPath]
        for step in Self.steps {
            let step = Step(
                step.schema, step.text.map { $0.replacingOccurrences(of: "@DIR@", with: directory) },
                json: step.json.map { $0.replacingOccurrences(of: "@DIR@", with: directory) })
            let text = try await Tool.run([Tool.blockgate] + step.text + admin)
            #expect(text.status == 0 && !text.output.isEmpty, "\(step.text.joined(separator: " ")): \(text.errors)")
            let json = try await Tool.run([Tool.blockgate] + step.json + ["--json"] + admin)
            #expect(json.status == 0, "\(step.json.joined(separator: " ")) --json: \(json.errors)")
            let schema = try #require(commands[step.schema] as? [String: Any], "no schema for \(step.schema)")
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(json.output.utf8)) else {
                Issue.record("\(step.json.joined(separator: " ")) --json printed no JSON: \(json.output)")
                continue
            }
            let problems = validator.problems(value, schema, at: step.schema)
            #expect(problems.isEmpty, "\(problems.joined(separator: "; "))")
        }
        #expect(Set(commands.keys).subtracting(Self.steps.map(\.schema)) == ["volume recover"])
        try await daemon.kill9()
    }
}

/// A JSON value that keeps booleans, integers and other numbers apart.
enum JSONValue: Decodable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}

/// Checks a JSON value against the subset of JSON Schema docs/cli-schema.json uses.
struct SchemaValidator {
    let document: [String: Any]

    func problems(_ value: JSONValue, _ schema: [String: Any], at path: String) -> [String] {
        if let reference = schema["$ref"] as? String {
            let name = String(reference.dropFirst("#/$defs/".count))
            guard let definitions = document["$defs"] as? [String: Any],
                let target = definitions[name] as? [String: Any]
            else { return ["\(path): unknown reference \(reference)"] }
            return problems(value, target, at: path)
        }
        switch (schema["type"] as? String, value) {
        case ("object", .object(let object)):
            let properties = schema["properties"] as? [String: Any] ?? [:]
            var found = ((schema["required"] as? [String]) ?? []).filter { object[$0] == nil }.map {
                "\(path): missing \($0)"
            }
            for (key, member) in object {
                guard let memberSchema = properties[key] as? [String: Any] else {
                    if schema["additionalProperties"] as? Bool == false { found.append("\(path): unexpected \(key)") }
                    continue
                }
                found += problems(member, memberSchema, at: "\(path).\(key)")
            }
            return found
        case ("array", .array(let array)):
            guard let items = schema["items"] as? [String: Any] else { return [] }
            return array.enumerated().flatMap { problems($0.element, items, at: "\(path)[\($0.offset)]") }
        case ("string", .string), ("boolean", .bool), ("integer", .integer):
            return []
        case (let type, _):
            return ["\(path): not of type \(type ?? "?")"]
        }
    }
}

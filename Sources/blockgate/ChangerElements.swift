import Gateway
import TapeLibrary

/// The library as a SCSI medium changer shows it to mtx: storage elements numbered from 1
/// (blockgate's slot N is element N+1, the import/export station is the element after the
/// last slot) and data transfer elements numbered from 0 (blockgate's drives in order).
/// Tapes on the shelf are outside the changer.
struct ChangerElements {
    struct Storage {
        var number: Int
        var barcode: String?
        var importExport: Bool
        var location: TapeLocation { importExport ? .station : .slot(number - 1) }
    }

    struct Transfer {
        var number: Int
        var drive: String
        var barcode: String?
        /// The storage element the tape came from, when it came from a slot.
        var source: Int?
    }

    let storage: [Storage]
    let transfers: [Transfer]

    init(_ library: LibraryStatus) {
        storage =
            library.slots.map { Storage(number: $0.slot + 1, barcode: $0.barcode, importExport: false) }
            + [Storage(number: library.slots.count + 1, barcode: library.station, importExport: true)]
        transfers = library.drives.enumerated().map { index, drive in
            Transfer(number: index, drive: drive.drive, barcode: drive.barcode, source: drive.homeSlot.map { $0 + 1 })
        }
    }

    /// The storage element a tape is in.
    func element(holding barcode: String) -> Storage? { storage.first { $0.barcode == barcode } }

    /// mtx's status report, line for line as mtx prints it.
    func statusReport(device: String) -> String {
        var lines = [
            "  Storage Changer \(device):\(transfers.count) Drives, \(storage.count) Slots ( "
                + "\(storage.filter(\.importExport).count) Import/Export )"
        ]
        for transfer in transfers {
            guard let barcode = transfer.barcode else {
                lines.append("Data Transfer Element \(transfer.number):Empty")
                continue
            }
            let source = transfer.source.map { "Storage Element \($0) Loaded" } ?? "Unknown Storage Element Loaded"
            lines.append("Data Transfer Element \(transfer.number):Full (\(source)):VolumeTag = \(barcode)")
        }
        for element in storage {
            let name = "      Storage Element \(element.number)\(element.importExport ? " IMPORT/EXPORT" : "")"
            lines.append(name + (element.barcode.map { ":Full :VolumeTag=\($0)" } ?? ":Empty"))
        }
        return lines.joined(separator: "\n")
    }
}

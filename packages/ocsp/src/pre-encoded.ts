import * as asn1js from "asn1js";

/**
 * DER bytes encoded once (by asn1js, pkijs or @peculiar/asn1-schema), or received from a peer
 * and echoed, written as they are wherever asn1js encodes the structure around them. asn1js
 * writes a constructed value by calling `toBER(sizeOnly, writer)` on each child; this child
 * hands its bytes to the writer instead of encoding anything. Nothing here produces a tag or a
 * length: the enclosing SEQUENCE or context tag is encoded by asn1js.
 */
class EncodedBlock extends asn1js.RawData {
  private readonly bytes: ArrayBuffer;

  constructor(bytes: ArrayBuffer) {
    super();
    this.bytes = bytes;
  }

  override toBER(_sizeOnly?: boolean, writer?: { write(buf: ArrayBuffer): void }): ArrayBuffer {
    writer?.write(this.bytes);
    return this.bytes;
  }
}

/**
 * `der` as an element of an asn1js structure (`new asn1js.Sequence({ value: [...] })`), written
 * verbatim when the structure is encoded. `der` is copied once, here (pass `owned: true` for a
 * buffer nobody else holds, to skip the copy); the block can be reused for any number of
 * encodings. It only encodes: asn1js cannot decode through it or compare it to a schema.
 */
export function encodedBlock(der: Uint8Array | ArrayBuffer, owned = false): asn1js.BaseBlock {
  const bytes =
    der instanceof ArrayBuffer
      ? owned
        ? der
        : der.slice(0)
      : owned && der.byteOffset === 0 && der.byteLength === der.buffer.byteLength
        ? (der.buffer as ArrayBuffer)
        : der.slice().buffer;
  return new EncodedBlock(bytes) as unknown as asn1js.BaseBlock;
}

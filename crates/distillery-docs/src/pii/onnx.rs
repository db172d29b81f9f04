//! The weights of a BERT token classifier exported to ONNX, as named f32 tensors for candle: a small reader
//! of the protobuf wire format for `ModelProto.graph` (nodes and initializers), with the weight-only
//! quantisations of ONNX Runtime's tools turned back into f32 — `MatMulNBits` (4-bit blocks with a scale per
//! block, com.microsoft domain) and `DequantizeLinear` of a `<name>_quantized` table with one scale and zero
//! point. Projections are named after the bias their output is added to (`….query.bias` gives
//! `….query.weight`), so the Hugging Face names candle's BERT expects come out of the graph itself.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;

/// One protobuf field value.
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field number and value, or None at the end.
    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let v = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            t => return Err(format!("unsupported protobuf wire type {t}")),
        };
        Ok(Some((key >> 3, v)))
    }
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

/// Repeated integers, packed or not.
fn ints(v: &Wire<'_>, out: &mut Vec<i64>) -> Result<(), String> {
    match v {
        Wire::Varint(x) => out.push(*x as i64),
        Wire::Bytes(b) => {
            let mut r = Reader::new(b);
            while r.pos < b.len() {
                out.push(r.varint()? as i64);
            }
        }
        _ => return Err("expected integers".into()),
    }
    Ok(())
}

/// A constant tensor: its shape, element type and little-endian bytes.
struct Init {
    dims: Vec<usize>,
    dtype: i32,
    data: Vec<u8>,
}

impl Init {
    fn parse(buf: &[u8]) -> Result<(String, Init), String> {
        let (mut name, mut dims, mut dtype) = (String::new(), Vec::new(), 0);
        let (mut raw, mut floats, mut int32s, mut external) = (None, Vec::new(), Vec::new(), false);
        let mut r = Reader::new(buf);
        while let Some((f, v)) = r.field()? {
            match (f, v) {
                (1, v) => ints(&v, &mut dims)?,
                (2, Wire::Varint(t)) => dtype = t as i32,
                (4, Wire::Bytes(b)) => floats.extend_from_slice(b),
                (4, Wire::Fixed32(x)) => floats.extend_from_slice(&x.to_le_bytes()),
                (5, v) => ints(&v, &mut int32s)?,
                (8, Wire::Bytes(b)) => name = utf8(b)?,
                (9, Wire::Bytes(b)) => raw = Some(b.to_vec()),
                (14, Wire::Varint(1)) => external = true,
                _ => {}
            }
        }
        if external {
            return Err(format!("{name}: weights stored outside the .onnx file are not supported"));
        }
        let data = match (raw, dtype) {
            (Some(b), _) => b,
            (None, FLOAT) => floats,
            (None, UINT8 | INT8) => int32s.iter().map(|v| *v as u8).collect(),
            (None, t) => return Err(format!("{name}: unsupported tensor data type {t}")),
        };
        let dims = dims.into_iter().map(|d| usize::try_from(d).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
        Ok((name, Init { dims, dtype, data }))
    }

    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    fn f32s(&self, name: &str) -> Result<Vec<f32>, String> {
        if self.dtype != FLOAT || self.data.len() != self.len() * 4 {
            return Err(format!("{name}: expected {} f32 values", self.len()));
        }
        Ok(self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// The values of an 8-bit tensor as integers.
    fn i32s(&self, name: &str) -> Result<Vec<i32>, String> {
        if self.data.len() != self.len() {
            return Err(format!("{name}: expected {} bytes", self.len()));
        }
        match self.dtype {
            UINT8 => Ok(self.data.iter().map(|b| i32::from(*b)).collect()),
            INT8 => Ok(self.data.iter().map(|b| i32::from(*b as i8)).collect()),
            t => Err(format!("{name}: expected 8-bit integers, got data type {t}")),
        }
    }
}

struct Node {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    ints: HashMap<String, i64>,
}

impl Node {
    fn parse(buf: &[u8]) -> Result<Node, String> {
        let mut n = Node { op: String::new(), inputs: Vec::new(), outputs: Vec::new(), ints: HashMap::new() };
        let mut r = Reader::new(buf);
        while let Some((f, v)) = r.field()? {
            match (f, v) {
                (1, Wire::Bytes(b)) => n.inputs.push(utf8(b)?),
                (2, Wire::Bytes(b)) => n.outputs.push(utf8(b)?),
                (4, Wire::Bytes(b)) => n.op = utf8(b)?,
                (5, Wire::Bytes(b)) => {
                    let (mut name, mut i) = (String::new(), None);
                    let mut a = Reader::new(b);
                    while let Some((f, v)) = a.field()? {
                        match (f, v) {
                            (1, Wire::Bytes(b)) => name = utf8(b)?,
                            (3, Wire::Varint(x)) => i = Some(x as i64),
                            _ => {}
                        }
                    }
                    if let Some(i) = i {
                        n.ints.insert(name, i);
                    }
                }
                _ => {}
            }
        }
        Ok(n)
    }

    fn int(&self, name: &str) -> Result<usize, String> {
        let v = self.ints.get(name).ok_or_else(|| format!("{}: no attribute {name}", self.op))?;
        usize::try_from(*v).map_err(|e| e.to_string())
    }
}

/// Reads an ONNX model's weights as f32 tensors under the names of the PyTorch module they came from.
pub(super) fn weights(bytes: &[u8], dev: &Device) -> Result<HashMap<String, Tensor>, String> {
    let mut graph = None;
    let mut r = Reader::new(bytes);
    while let Some((f, v)) = r.field()? {
        if let (7, Wire::Bytes(b)) = (f, v) {
            graph = Some(b);
        }
    }
    let graph = graph.ok_or("not an ONNX model (no graph)")?;
    let (mut inits, mut nodes) = (HashMap::new(), Vec::new());
    let mut r = Reader::new(graph);
    while let Some((f, v)) = r.field()? {
        match (f, v) {
            (1, Wire::Bytes(b)) => nodes.push(Node::parse(b)?),
            (5, Wire::Bytes(b)) => {
                let (name, init) = Init::parse(b)?;
                inits.insert(name, init);
            }
            _ => {}
        }
    }
    let tensor = |data: Vec<f32>, dims: &[usize]| Tensor::from_vec(data, dims, dev).map_err(|e| e.to_string());
    let mut out = HashMap::new();
    // Plain f32 constants (biases, layer norms, unquantised tables) under their own names.
    for (name, init) in &inits {
        if init.dtype == FLOAT && !name.starts_with("onnx::") && !name.ends_with("_scale") {
            out.insert(name.clone(), tensor(init.f32s(name)?, &init.dims)?);
        }
    }
    // Tables quantised per tensor: `<name>_quantized`, `<name>_scale`, `<name>_zero_point`.
    for (name, q) in &inits {
        let Some(base) = name.strip_suffix("_quantized") else { continue };
        let scale = inits.get(&format!("{base}_scale")).ok_or_else(|| format!("{base}: no scale"))?.f32s(base)?;
        let zero = match inits.get(&format!("{base}_zero_point")) {
            Some(z) => z.i32s(base)?.first().copied().unwrap_or(0),
            None => 0,
        };
        let s = *scale.first().ok_or_else(|| format!("{base}: empty scale"))?;
        if scale.len() != 1 {
            return Err(format!("{base}: per-axis quantisation is not supported"));
        }
        let data = q.i32s(name)?.into_iter().map(|v| (v - zero) as f32 * s).collect();
        out.insert(base.to_string(), tensor(data, &q.dims)?);
    }
    // Projections: the weight of a (quantised) matrix product named after the bias added to its output.
    let bias_of = |output: &str| -> Option<String> {
        nodes.iter().filter(|n| n.op == "Add" && n.inputs.iter().any(|i| i == output)).find_map(|n| {
            n.inputs.iter().find(|i| i.as_str() != output && i.ends_with(".bias") && inits.contains_key(*i)).cloned()
        })
    };
    for n in &nodes {
        let (Some(b), Some(output)) = (n.inputs.get(1), n.outputs.first()) else { continue };
        let Some(init) = inits.get(b) else { continue };
        let Some(bias) = bias_of(output) else { continue };
        let weight = format!("{}.weight", bias.trim_end_matches(".bias"));
        match n.op.as_str() {
            "MatMulNBits" => {
                let data = dequantize_nbits(n, init, &inits)?;
                out.insert(weight, tensor(data, &[n.int("N")?, n.int("K")?])?);
            }
            "MatMul" if init.dtype == FLOAT && init.dims.len() == 2 => {
                // ONNX multiplies by (in, out); torch keeps (out, in).
                let t =
                    tensor(init.f32s(b)?, &init.dims)?.t().and_then(|t| t.contiguous()).map_err(|e| e.to_string())?;
                out.insert(weight, t);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A `MatMulNBits` weight as an (N, K) matrix: 4-bit values in blocks along K, low nibble first, each block
/// with a scale and a zero point (8 when the node has none).
fn dequantize_nbits(n: &Node, b: &Init, inits: &HashMap<String, Init>) -> Result<Vec<f32>, String> {
    let (k, nn, bits, block) = (n.int("K")?, n.int("N")?, n.int("bits")?, n.int("block_size")?);
    if bits != 4 || block == 0 || block % 2 != 0 {
        return Err(format!("MatMulNBits with {bits} bits in blocks of {block} is not supported"));
    }
    let blocks = k.div_ceil(block);
    let blob = block / 2;
    if b.data.len() != nn * blocks * blob {
        return Err(format!("MatMulNBits weight has {} bytes, expected {}", b.data.len(), nn * blocks * blob));
    }
    let scales_name = n.inputs.get(2).ok_or("MatMulNBits without scales")?;
    let scales = inits.get(scales_name).ok_or_else(|| format!("{scales_name}: missing"))?.f32s(scales_name)?;
    if scales.len() != nn * blocks {
        return Err(format!("{scales_name}: {} scales, expected {}", scales.len(), nn * blocks));
    }
    let zeros = match n.inputs.get(3).filter(|z| !z.is_empty()) {
        Some(z) => {
            let z = inits.get(z).ok_or_else(|| format!("{z}: missing"))?;
            if z.dtype != UINT8 || z.data.len() != nn * blocks.div_ceil(2) {
                return Err("MatMulNBits zero points must be packed 4-bit values".into());
            }
            Some(&z.data)
        }
        None => None,
    };
    let mut w = vec![0f32; nn * k];
    for row in 0..nn {
        for blk in 0..blocks {
            let s = scales[row * blocks + blk];
            let zero = match zeros {
                Some(z) => {
                    let byte = z[row * blocks.div_ceil(2) + blk / 2];
                    f32::from(if blk % 2 == 0 { byte & 0x0f } else { byte >> 4 })
                }
                None => 8.0,
            };
            let base = (row * blocks + blk) * blob;
            for j in 0..block {
                let col = blk * block + j;
                if col >= k {
                    break;
                }
                let byte = b.data[base + j / 2];
                let q = if j % 2 == 0 { byte & 0x0f } else { byte >> 4 };
                w[row * k + col] = (f32::from(q) - zero) * s;
            }
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(f: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(f << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn int_field(f: u64, v: u64, out: &mut Vec<u8>) {
        varint(f << 3, out);
        varint(v, out);
    }

    fn init(name: &str, dims: &[u64], dtype: u64, raw: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        for d in dims {
            int_field(1, *d, &mut t);
        }
        int_field(2, dtype, &mut t);
        bytes_field(8, name.as_bytes(), &mut t);
        bytes_field(9, raw, &mut t);
        t
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, u64)]) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            bytes_field(1, i.as_bytes(), &mut n);
        }
        for o in outputs {
            bytes_field(2, o.as_bytes(), &mut n);
        }
        bytes_field(4, op.as_bytes(), &mut n);
        for (name, v) in attrs {
            let mut a = Vec::new();
            bytes_field(1, name.as_bytes(), &mut a);
            int_field(3, *v, &mut a);
            bytes_field(5, &a, &mut n);
        }
        n
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn dequantises_4_bit_blocks_and_per_tensor_tables() {
        // A 2x4 weight (N=2, K=4) in one block of 4 per row: nibbles low first, zero point 8.
        let q = [0x9 | 0xa << 4, 0x8 | 0x7 << 4, 0xf << 4, 0x8 | 0x8 << 4];
        let mut g = Vec::new();
        bytes_field(5, &init("onnx::MatMul_1_Q4", &[2, 1, 2], 2, &q), &mut g);
        bytes_field(5, &init("onnx::MatMul_1_scales", &[2, 1], 1, &f32_bytes(&[0.5, 2.0])), &mut g);
        bytes_field(5, &init("dense.bias", &[2], 1, &f32_bytes(&[1.0, -1.0])), &mut g);
        bytes_field(5, &init("emb.weight_quantized", &[2, 2], 2, &[130, 126, 128, 255]), &mut g);
        bytes_field(5, &init("emb.weight_scale", &[], 1, &f32_bytes(&[0.25])), &mut g);
        bytes_field(5, &init("emb.weight_zero_point", &[], 2, &[128]), &mut g);
        let mm = node(
            "MatMulNBits",
            &["x", "onnx::MatMul_1_Q4", "onnx::MatMul_1_scales"],
            &["mm"],
            &[("K", 4), ("N", 2), ("bits", 4), ("block_size", 4)],
        );
        bytes_field(1, &mm, &mut g);
        bytes_field(1, &node("Add", &["dense.bias", "mm"], &["y"], &[]), &mut g);
        let mut m = Vec::new();
        int_field(1, 8, &mut m);
        bytes_field(7, &g, &mut m);

        let w = weights(&m, &Device::Cpu).expect("weights");
        let dense = w["dense.weight"].to_vec2::<f32>().expect("2-d");
        assert_eq!(dense, vec![vec![0.5, 1.0, 0.0, -0.5], vec![-16.0, 14.0, 0.0, 0.0]]);
        assert_eq!(w["dense.bias"].to_vec1::<f32>().expect("1-d"), vec![1.0, -1.0]);
        let emb = w["emb.weight"].to_vec2::<f32>().expect("2-d");
        assert_eq!(emb, vec![vec![0.5, -0.5], vec![0.0, 31.75]]);
        assert!(!w.contains_key("onnx::MatMul_1_scales"));
    }

    #[test]
    fn rejects_what_is_not_a_model() {
        assert!(weights(b"", &Device::Cpu).is_err());
        assert!(weights(&[0x3a, 0x05, 0x01], &Device::Cpu).is_err());
    }
}

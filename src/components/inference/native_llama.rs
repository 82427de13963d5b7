//! The GGUF Llama forward pass with our own quantized matrix products
//! (`qmatmul`) for the projections and the output head, and candle for
//! everything else: embeddings, norms, rotary embeddings and attention are
//! candle's, computed exactly as in candle-transformers' `quantized_llama`
//! (which this follows step for step; MIT/Apache-2.0), so the two paths
//! differ only in their matrix products.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{CpuStorage, DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;
use candle_transformers::utils::build_causal_mask;

use super::causal_softmax::CausalSoftmax;

use super::qmatmul::{NativeType, PackedMatrix, QuantizedActivations, WeightArena, matmul_many};

/// candle's quantized Llama builds its rotary tables for this many
/// positions; so does this one.
pub(super) const MAX_SEQ_LEN: usize = candle_transformers::models::quantized_llama::MAX_SEQ_LEN;

/// Whose kernels compute a GGUF model's matrix products: a model's
/// `matmul` key in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulKernels {
    /// Ours (`qmatmul`): repacked weights, activations quantized once per
    /// layer, int8 kernels for this CPU. Types without kernels of ours
    /// (f16, q5_*, q2_K, q3_K, q5_K) stay on candle's, projection by
    /// projection.
    #[default]
    Native,
    /// candle-transformers' quantized Llama throughout.
    Candle,
}

impl MatmulKernels {
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Candle => "candle",
        }
    }
}

/// The GGUF weight type of `dtype` when our kernels run it.
pub(super) fn native_type(dtype: GgmlDType) -> Option<NativeType> {
    match dtype {
        GgmlDType::Q4_0 => Some(NativeType::Q4_0),
        GgmlDType::Q4_1 => Some(NativeType::Q4_1),
        GgmlDType::Q8_0 => Some(NativeType::Q8_0),
        GgmlDType::Q4K => Some(NativeType::Q4K),
        GgmlDType::Q6K => Some(NativeType::Q6K),
        _ => None,
    }
}

/// One projection: ours where its type has kernels, candle's otherwise
/// (f16, q5_*, q2_K …).
enum Projection {
    Native(PackedMatrix),
    Candle(QMatMul),
}

impl Projection {
    /// Ours packs into `arena`, beside the model's other matrices.
    fn new(tensor: QTensor, arena: &mut WeightArena) -> Result<Self> {
        if let (Some(ty), Ok((rows, cols))) = (native_type(tensor.dtype()), tensor.shape().dims2())
            && ty.fits_row(cols)
        {
            let packed = PackedMatrix::pack_in(arena, ty, rows, cols, &tensor.data()?)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            return Ok(Self::Native(packed));
        }
        Ok(Self::Candle(QMatMul::from_qtensor(tensor)?))
    }

    fn forward(&self, input: &ProjectionInput<'_>) -> Result<Tensor> {
        let [out] = Self::forward_many([self], input)?;
        Ok(out)
    }

    /// Projections of one input (q, k and v; gate and up): ours in one
    /// parallel region where every one is ours (`qmatmul::matmul_many`).
    fn forward_many<const N: usize>(
        projections: [&Self; N],
        input: &ProjectionInput<'_>,
    ) -> Result<[Tensor; N]> {
        let native: Option<Vec<&PackedMatrix>> = projections
            .iter()
            .map(|p| match p {
                Self::Native(w) => Some(w),
                Self::Candle(_) => None,
            })
            .collect();
        let outs = match native {
            Some(ws) => native_outputs(&ws, input)?,
            None => projections
                .iter()
                .map(|p| match p {
                    Self::Candle(m) => m.forward(input.x),
                    Self::Native(w) => native_outputs(&[w], input)?
                        .pop()
                        .ok_or_else(|| candle_core::Error::Msg("no output".into())),
                })
                .collect::<Result<Vec<_>>>()?,
        };
        outs.try_into()
            .map_err(|_| candle_core::Error::Msg("a projection gave no output".into()))
    }
}

/// `input · wᵀ` for each of `ws`, shaped as the input with its last
/// dimension each matrix's rows.
fn native_outputs(ws: &[&PackedMatrix], input: &ProjectionInput<'_>) -> Result<Vec<Tensor>> {
    let Some(first) = ws.first() else {
        return Ok(Vec::new());
    };
    let x = input.quantized(first.cols)?;
    matmul_many(ws, x)
        .into_iter()
        .zip(ws)
        .map(|(out, w)| {
            let mut dims = input.x.dims().to_vec();
            if let Some(last) = dims.last_mut() {
                *last = w.rows;
            }
            Tensor::from_vec(out, dims, input.x.device())
        })
        .collect()
}

/// An input that several projections read (q, k and v; gate and up),
/// quantized at most once.
struct ProjectionInput<'a> {
    x: &'a Tensor,
    quantized: OnceLock<QuantizedActivations>,
}

impl<'a> ProjectionInput<'a> {
    fn new(x: &'a Tensor) -> Self {
        Self {
            x,
            quantized: OnceLock::new(),
        }
    }

    fn quantized(&self, cols: usize) -> Result<&QuantizedActivations> {
        if let Some(q) = self.quantized.get() {
            return Ok(q);
        }
        let quantize = |values: &[f32]| {
            if cols == 0 || !values.len().is_multiple_of(cols) {
                candle_core::bail!("an input of {} values is not rows of {cols}", values.len());
            }
            Ok(QuantizedActivations::quantize(
                values,
                values.len() / cols,
                cols,
            ))
        };
        // A contiguous f32 input on the CPU is read in place: copying it
        // out first was 1 % of a prefill.
        let quantized = {
            let (storage, layout) = self.x.storage_and_layout();
            match (&*storage, layout.contiguous_offsets()) {
                (candle_core::Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => {
                    Some(quantize(&data[start..end])?)
                }
                _ => None,
            }
        };
        let quantized = match quantized {
            Some(q) => q,
            None => quantize(
                &self
                    .x
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?,
            )?,
        };
        Ok(self.quantized.get_or_init(|| quantized))
    }
}

/// The weights of one layer, shared by every clone of the model.
struct LayerWeights {
    wq: Projection,
    wk: Projection,
    wv: Projection,
    wo: Projection,
    w1: Projection,
    w2: Projection,
    w3: Projection,
    attention_norm: RmsNorm,
    ffn_norm: RmsNorm,
}

#[derive(Clone)]
struct Layer {
    weights: Arc<LayerWeights>,
    kv_cache: Option<(Tensor, Tensor)>,
}

/// What every layer shares.
struct Shape {
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    rope_is_neox: bool,
    cos: Tensor,
    sin: Tensor,
    neg_inf: Tensor,
}

/// A GGUF Llama with our matrix products; cloning shares the weights and
/// gives the clone its own KV cache.
#[derive(Clone)]
pub(super) struct NativeLlama {
    tok_embeddings: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Arc<Projection>,
    shape: Arc<Shape>,
    masks: HashMap<(usize, usize), Tensor>,
}

/// How many of a model's projections run on our kernels, and which types
/// fell back to candle's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeCoverage {
    pub native: usize,
    pub total: usize,
    /// GGML type names of the projections left to candle.
    pub fallback_types: Vec<String>,
}

impl NativeLlama {
    /// Loads the weights of `ct` (checked beforehand by `inspect_gguf`).
    pub(super) fn from_gguf<R: std::io::Seek + std::io::Read>(
        ct: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<(Self, NativeCoverage)> {
        let md = |s: &str| match ct.metadata.get(s) {
            None => candle_core::bail!("cannot find {s} in metadata"),
            Some(v) => Ok(v),
        };
        let head_count = md("llama.attention.head_count")?.to_u32()? as usize;
        let head_count_kv = md("llama.attention.head_count_kv")?.to_u32()? as usize;
        let block_count = md("llama.block_count")?.to_u32()? as usize;
        let embedding_length = md("llama.embedding_length")?.to_u32()? as usize;
        let rope_dim = md("llama.rope.dimension_count")?.to_u32()? as usize;
        let rms_norm_eps = f64::from(md("llama.attention.layer_norm_rms_epsilon")?.to_f32()?);
        let rope_freq_base = md("llama.rope.freq_base")
            .and_then(|m| m.to_f32())
            .unwrap_or(10000f32);
        let (cos, sin) = rope_tables(rope_dim, rope_freq_base, device)?;

        let mut coverage = NativeCoverage {
            native: 0,
            total: 0,
            fallback_types: Vec::new(),
        };
        let mut arena = WeightArena::for_model();
        let mut projection = |tensor: QTensor| -> Result<Projection> {
            let dtype = tensor.dtype();
            let p = Projection::new(tensor, &mut arena)?;
            coverage.total += 1;
            match &p {
                Projection::Native(_) => coverage.native += 1,
                Projection::Candle(_) => {
                    let name = format!("{dtype:?}");
                    if !coverage.fallback_types.contains(&name) {
                        coverage.fallback_types.push(name);
                    }
                }
            }
            Ok(p)
        };

        let tok_embeddings_q = ct.tensor(reader, "token_embd.weight", device)?;
        let tok_embeddings = tok_embeddings_q.dequantize(device)?;
        let norm = RmsNorm::from_qtensor(
            ct.tensor(reader, "output_norm.weight", device)?,
            rms_norm_eps,
        )?;
        let output = match ct.tensor(reader, "output.weight", device) {
            Ok(tensor) => tensor,
            Err(_) => tok_embeddings_q,
        };
        let output = projection(output)?;
        let mut layers = Vec::with_capacity(block_count);
        for layer in 0..block_count {
            let mut tensor = |name: &str| ct.tensor(reader, &format!("blk.{layer}.{name}"), device);
            let weights = LayerWeights {
                wq: projection(tensor("attn_q.weight")?)?,
                wk: projection(tensor("attn_k.weight")?)?,
                wv: projection(tensor("attn_v.weight")?)?,
                wo: projection(tensor("attn_output.weight")?)?,
                w1: projection(tensor("ffn_gate.weight")?)?,
                w2: projection(tensor("ffn_down.weight")?)?,
                w3: projection(tensor("ffn_up.weight")?)?,
                attention_norm: RmsNorm::from_qtensor(tensor("attn_norm.weight")?, rms_norm_eps)?,
                ffn_norm: RmsNorm::from_qtensor(tensor("ffn_norm.weight")?, rms_norm_eps)?,
            };
            layers.push(Layer {
                weights: Arc::new(weights),
                kv_cache: None,
            });
        }
        let model = Self {
            tok_embeddings: Embedding::new(tok_embeddings, embedding_length),
            layers,
            norm,
            output: Arc::new(output),
            shape: Arc::new(Shape {
                n_head: head_count,
                n_kv_head: head_count_kv,
                head_dim: embedding_length / head_count,
                // GGUF "llama" files are the interleaved (NORM) convention.
                rope_is_neox: false,
                cos,
                sin,
                neg_inf: Tensor::new(f32::NEG_INFINITY, device)?,
            }),
            masks: HashMap::new(),
        };
        Ok((model, coverage))
    }

    fn mask(&mut self, seq_len: usize, index_pos: usize, device: &Device) -> Result<Tensor> {
        let kv_len = index_pos + seq_len;
        if let Some(mask) = self.masks.get(&(seq_len, kv_len)) {
            return Ok(mask.clone());
        }
        let mask = build_causal_mask(seq_len, index_pos, device)?;
        self.masks.insert((seq_len, kv_len), mask.clone());
        Ok(mask)
    }

    /// Logits of the last position; `index_pos == 0` starts a new sequence.
    pub(super) fn forward(&mut self, x: &Tensor, index_pos: usize) -> Result<Tensor> {
        let (_b_sz, seq_len) = x.dims2()?;
        // The CPU's attention masks as it takes the softmax.
        let mask = if seq_len == 1 || x.device().is_cpu() {
            None
        } else {
            Some(self.mask(seq_len, index_pos, x.device())?)
        };
        let shape = Arc::clone(&self.shape);
        let mut layer_in = self.tok_embeddings.forward(x)?;
        for layer in self.layers.iter_mut() {
            let w = Arc::clone(&layer.weights);
            let residual = &layer_in;
            let x = w.attention_norm.forward(residual)?;
            let attn = attention(
                &shape,
                &w,
                &mut layer.kv_cache,
                &x,
                mask.as_ref(),
                index_pos,
            )?;
            let x = (attn + residual)?;
            let residual = &x;
            let h = w.ffn_norm.forward(residual)?;
            let input = ProjectionInput::new(&h);
            let [gate, up] = Projection::forward_many([&w.w1, &w.w3], &input)?;
            let act = (candle_nn::ops::silu(&gate)? * up)?;
            let down = w.w2.forward(&ProjectionInput::new(&act))?;
            layer_in = (down + residual)?;
        }
        let x = self.norm.forward(&layer_in)?;
        let x = x.i((.., seq_len - 1, ..))?.contiguous()?;
        self.output.forward(&ProjectionInput::new(&x))
    }
}

fn attention(
    shape: &Shape,
    w: &LayerWeights,
    kv_cache: &mut Option<(Tensor, Tensor)>,
    x: &Tensor,
    mask: Option<&Tensor>,
    index_pos: usize,
) -> Result<Tensor> {
    let (b_sz, seq_len, n_embd) = x.dims3()?;
    let input = ProjectionInput::new(x);
    let [q, k, v] = Projection::forward_many([&w.wq, &w.wk, &w.wv], &input)?;
    let (n_head, n_kv_head, head_dim) = (shape.n_head, shape.n_kv_head, shape.head_dim);
    let q = q
        .reshape((b_sz, seq_len, n_head, head_dim))?
        .transpose(1, 2)?;
    let k = k
        .reshape((b_sz, seq_len, n_kv_head, head_dim))?
        .transpose(1, 2)?;
    let v = v
        .reshape((b_sz, seq_len, n_kv_head, head_dim))?
        .transpose(1, 2)?
        .contiguous()?;
    let rotate = |x: &Tensor| -> Result<Tensor> {
        let cos = shape.cos.narrow(0, index_pos, seq_len)?;
        let sin = shape.sin.narrow(0, index_pos, seq_len)?;
        let x = x.contiguous()?;
        if shape.rope_is_neox {
            candle_nn::rotary_emb::rope(&x, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope_i(&x, &cos, &sin)
        }
    };
    let q = rotate(&q)?;
    let k = rotate(&k)?;
    let (k, v) = match kv_cache.as_ref() {
        Some((k_cache, v_cache)) if index_pos != 0 => (
            Tensor::cat(&[k_cache, &k], 2)?,
            Tensor::cat(&[v_cache, &v], 2)?,
        ),
        _ => (k, v),
    };
    *kv_cache = Some((k.clone(), v.clone()));
    // Grouped-query attention without copying the cache once per query
    // head (candle's `repeat_kv`): the query heads that share a KV head
    // (consecutive, as `repeat_kv` orders them) become rows of one matrix.
    let n_rep = n_head / n_kv_head;
    let kv_len = k.dim(2)?;
    let q = q
        .contiguous()?
        .reshape((b_sz, n_kv_head, n_rep * seq_len, head_dim))?;
    let att = q.matmul(&k.t()?)?;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let att = if att.device().is_cpu() {
        att.apply_op1_no_bwd(&CausalSoftmax {
            seq_len,
            index_pos,
            scale: scale as f32,
        })?
    } else {
        let att = (att * scale)?;
        let att = match mask {
            None => att,
            Some(mask) => {
                let att = att.reshape((b_sz, n_kv_head, n_rep, seq_len, kv_len))?;
                let mask = mask.broadcast_as(att.shape())?;
                mask.where_cond(&shape.neg_inf.broadcast_as(mask.shape().dims())?, &att)?
                    .reshape((b_sz, n_kv_head, n_rep * seq_len, kv_len))?
            }
        };
        candle_nn::ops::softmax_last_dim(&att)?
    };
    let y = att.matmul(&v.contiguous()?)?;
    let y = y
        .reshape((b_sz, n_head, seq_len, head_dim))?
        .transpose(1, 2)?
        .reshape(&[b_sz, seq_len, n_embd])?;
    w.wo.forward(&ProjectionInput::new(&y))
}

fn rope_tables(head_dim: usize, freq_base: f32, device: &Device) -> Result<(Tensor, Tensor)> {
    let theta: Vec<_> = (0..head_dim)
        .step_by(2)
        .map(|i| 1f32 / freq_base.powf(i as f32 / head_dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), device)?;
    let idx_theta = Tensor::arange(0, MAX_SEQ_LEN as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((MAX_SEQ_LEN, 1))?
        .matmul(&theta.reshape((1, theta.elem_count()))?)?;
    Ok((idx_theta.cos()?, idx_theta.sin()?))
}

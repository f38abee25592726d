//! Activation functions as data, bound to a network's `act` slots.
//!
//! - `registry`: the known activations ([`Registry`]), each formula parsed
//!   once when it is registered. Every activation comes from a plugin
//!   ([`crate::plugin`]), the shipped ones included ([`Registry::builtin`],
//!   [`Registry::discover`]). [`KnownActivations`] is what checking a spec
//!   needs of it (which activations exist, which parameters each takes), and
//!   holds the one check of a spec's activation and overrides.
//! - `binding`: which activation each slot gets ([`ActBindings`]), parsed
//!   from CLI-style specs (`arelu`, `fc=relu`, `lrelu:s=0.2`, `fc=prelu:p=0`).
//! - `layer`: one `act` node of a built model with its own parameters
//!   ([`ActLayer`]). Its forward pass calls the plugin's fused kernels when
//!   it has them and the tensor is an f32 CPU tensor ([`crate::ops::fused`]);
//!   otherwise it lowers the parsed formula to candle ops, so autograd and
//!   every device come for free.
//! - `lower`: that lowering, a formula to candle ops.
//!
//! Lowering rules: numeric literals and fixed per-layer parameters are folded
//! as scalars; comparisons become masks; `max(u, v)` is
//! `where(u >= v, u, v)` so that on ties the *whole* gradient goes to `u`
//! (candle's `maximum` splits it 50/50, which would keep AReLU linear from
//! its a = b, c = d start); `min(u, v)` is `where(u <= v, u, v)`; `relu` and
//! `abs` are candle's, whose derivative at 0 is that of the positive side
//! (as `max(x, 0)` under the tie rule). Fused kernels must follow the same
//! conventions; `acbench plugins check` holds them to it.

mod binding;
mod layer;
mod lower;
mod registry;

pub use binding::{ActBindings, ActSpec};
pub use layer::ActLayer;
pub(crate) use layer::FusedParts;
pub use registry::{CompiledActivation, KnownActivations, Registry};

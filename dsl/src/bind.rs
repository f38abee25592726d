//! Binding a call's arguments to the callee's parameters: positional ones
//! first, then by keyword.

use crate::ast::Arg;
use crate::error::{Error, ErrorKind, Source, quoted};
use crate::eval::{Ctx, Env};
use crate::ir::{Span, Value};

/// An evaluated argument and where it was written.
pub(crate) type Given = (Value, Span);

/// Matches call arguments to parameter names: positional first, then by
/// keyword. Checks arity, unknown and duplicate arguments; the result holds
/// one slot per parameter, in the parameters' order.
pub(crate) fn bind<'a>(
    src: &Source,
    callee: &str,
    params: &[&str],
    args: &'a [Arg],
) -> Result<Vec<Option<&'a Arg>>, Error> {
    let mut slots: Vec<Option<&Arg>> = vec![None; params.len()];
    let mut positional = 0;
    for a in args {
        match &a.name {
            None => {
                if positional >= params.len() {
                    let msg = format!(
                        "`{callee}` takes at most {} positional argument{}, found more",
                        params.len(),
                        if params.len() == 1 { "" } else { "s" }
                    );
                    return Err(
                        Error::new(ErrorKind::Arity, msg, src).label(a.span, "unexpected argument")
                    );
                }
                slots[positional] = Some(a);
                positional += 1;
            }
            Some(name) => {
                let Some(i) = params.iter().position(|p| *p == name.name) else {
                    let valid = if params.is_empty() {
                        "it takes no arguments".to_string()
                    } else {
                        format!("it takes {}", quoted(params.iter().copied()))
                    };
                    let msg = format!("`{callee}` has no argument `{}`; {valid}", name.name);
                    return Err(Error::new(ErrorKind::UnknownArgument, msg, src)
                        .label(name.span, "unknown argument"));
                };
                if slots[i].is_some() {
                    let msg = format!("argument `{}` of `{callee}` given twice", name.name);
                    return Err(Error::new(ErrorKind::DuplicateArgument, msg, src)
                        .label(name.span, "given again here"));
                }
                slots[i] = Some(a);
            }
        }
    }
    Ok(slots)
}

/// Binds call arguments (see [`bind`]) and evaluates them in `env`: one
/// slot per parameter, `None` where the call leaves it out.
pub(crate) fn bind_values(
    cx: &Ctx<'_>,
    callee: &str,
    params: &[&str],
    args: &[Arg],
    env: &Env,
) -> Result<Vec<Option<Given>>, Error> {
    let slots = bind(cx.src(), callee, params, args).map_err(|e| cx.in_frames(e))?;
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        out.push(match slot {
            Some(a) => Some((cx.eval(&a.value, env)?, a.value.span)),
            None => None,
        });
    }
    Ok(out)
}

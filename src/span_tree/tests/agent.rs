//! The figures and facts on the `invoke_agent` span.

use super::*;

#[test]
fn invoke_agent_totals_equal_the_result_line_exactly() {
    for name in ["b_bash", "g_partial_messages", "k3_parallel_tools"] {
        let raw = raw_fixture(name).pop().unwrap();
        let usage = &raw["usage"];
        let captured = trace(&fixture(name), context(false), None);
        let data = captured.sent_data(captured.agent());

        let field = |key: &str| usage[key].as_u64().unwrap();
        let read = field("cache_read_input_tokens");
        let written = field("cache_creation_input_tokens");
        let input = field("input_tokens") + read + written;
        let output = field("output_tokens");
        assert!(data["gen_ai.usage.input_tokens"].is_u64());
        assert_eq!(data["gen_ai.usage.input_tokens"], input);
        assert_eq!(data["gen_ai.usage.output_tokens"], output);
        assert_eq!(data["gen_ai.usage.total_tokens"], input + output);
        assert_eq!(data["gen_ai.usage.cache_read.input_tokens"], read);
        assert_eq!(data["gen_ai.usage.input_tokens.cached"], read);
        assert_eq!(data["gen_ai.usage.cache_creation.input_tokens"], written);
        assert_eq!(data["gen_ai.usage.input_tokens.cache_write"], written);
        assert!(data["gen_ai.cost.total_tokens"].is_f64());
        assert_eq!(data["gen_ai.cost.total_tokens"], raw["total_cost_usd"]);
        assert_eq!(data["gen_ai.cost_usd"], raw["total_cost_usd"]);
        assert_eq!(data["gen_ai.num_turns"], raw["num_turns"]);
        assert_eq!(data["gen_ai.duration_ms"], raw["duration_ms"]);
        assert_eq!(data["gen_ai.api_duration_ms"], raw["duration_api_ms"]);
        assert_eq!(data["gen_ai.conversation.id"], raw["session_id"]);
        let answer = raw["result"].as_str().unwrap().chars().count();
        assert_eq!(data["response_length"], answer);
    }
}

#[test]
fn invoke_agent_describes_the_agent_and_its_tools() {
    let raws = raw_fixture("b_bash");
    let mut context = context(false);
    context.resumed_session_id = Some("0755fcc5-7c4f-4edf-b130-f38176bf0389".into());
    let lines = fixture("b_bash");
    let captured = trace_with(&lines, context.clone(), Ok(outcome(&lines, None)), |_| {});
    let data = captured.sent_data(captured.agent());

    assert_eq!(data["gen_ai.operation.name"], "invoke_agent");
    assert_eq!(data["gen_ai.agent.name"], "Claude Code");
    assert_eq!(data["gen_ai.provider.name"], "anthropic");
    assert_eq!(data["gen_ai.system"], "anthropic");
    assert_eq!(data["gen_ai.request.model"], raws[0]["model"]);
    let tools: Value =
        serde_json::from_str(data["gen_ai.request.available_tools"].as_str().unwrap()).unwrap();
    assert_eq!(tools, raws[0]["tools"]);
    assert_eq!(
        data["working_directory"],
        context.working_directory.as_str()
    );
    assert_eq!(
        data["resumed_session_id"],
        context.resumed_session_id.unwrap().as_str()
    );
    assert_eq!(data["tools_used"], r#"["Bash"]"#);
    assert_eq!(captured.agent().status, Some(SpanStatus::Ok));
}

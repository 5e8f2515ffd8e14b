// The Grafana dashboards, as code (@grafana/grafana-foundation-sdk). `npm run dashboards` writes
// dashboards/*.json, which are committed; test/dashboards.test.ts fails when they are not current.
// Every panel query is run against a real Prometheus by test/e2e/alerting.test.ts.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BigValueColorMode,
  BigValueGraphMode,
  BigValueTextMode,
  GraphThresholdsStyleConfigBuilder,
  GraphThresholdsStyleMode,
  LegendDisplayMode,
  LegendPlacement,
  SortOrder,
  TooltipDisplayMode,
  VizLegendOptionsBuilder,
  VizTooltipOptionsBuilder,
  ReduceDataOptionsBuilder,
  StackingConfigBuilder,
  StackingMode,
  type DataSourceRef,
} from "@grafana/grafana-foundation-sdk/common";
import {
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  VariableRefresh,
  VariableSort,
  type Dashboard,
  type Threshold,
} from "@grafana/grafana-foundation-sdk/dashboard";
import { DataqueryBuilder, PromQueryFormat } from "@grafana/grafana-foundation-sdk/prometheus";
import { PanelBuilder as StatBuilder } from "@grafana/grafana-foundation-sdk/stat";
import { PanelBuilder as TableBuilder } from "@grafana/grafana-foundation-sdk/table";
import { PanelBuilder as TimeseriesBuilder } from "@grafana/grafana-foundation-sdk/timeseries";
import { pairSafe } from "./pair-safe.js";

export const DASHBOARDS_DIR = join(fileURLToPath(import.meta.url), "../../dashboards");

const DATASOURCE: DataSourceRef = { type: "prometheus", uid: "${datasource}" };
const TAGS = ["orgwatch", "nats", "jetstream", "agents"];
/** Task consumers: the agents' work (inbox and broadcasts have panels of their own). */
const TASKS = `kind="tasks"`;
const ROLE = `role="$role"`;

interface QueryOptions {
  legend?: string;
  /** Instant query (stat and table panels showing "now"). */
  instant?: boolean;
  table?: boolean;
  /** Latency histograms carry trace ids as exemplars: show them, linked to the trace. */
  exemplar?: boolean;
}

/** Every panel reads a replica pair as one orgwatch (scripts/pair-safe.ts). */
function query(expr: string, options: QueryOptions = {}): DataqueryBuilder {
  const q = new DataqueryBuilder().datasource(DATASOURCE).expr(pairSafe(expr));
  if (options.legend !== undefined) q.legendFormat(options.legend);
  if (options.instant) q.instant();
  else q.range();
  if (options.table) q.format(PromQueryFormat.Table);
  if (options.exemplar) q.exemplar(true);
  return q;
}

/** A, B, C...: Grafana's query ids, which overrides refer to. */
function withRefIds(targets: DataqueryBuilder[]): DataqueryBuilder[] {
  return targets.map((t, i) => t.refId(String.fromCharCode(65 + i)));
}

function thresholds(steps: Threshold[]): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps(steps);
}

const GREEN = (): Threshold => ({ value: null, color: "green" });

interface PanelOptions {
  description: string;
  unit: string;
  span?: number;
  height?: number;
  /** Draw a line at this value (the alert's threshold) and colour beyond it. */
  alertAt?: number;
  stacked?: boolean;
  noValue?: string;
  min?: number;
}

function timeseries(title: string, targets: DataqueryBuilder[], o: PanelOptions): TimeseriesBuilder {
  const panel = new TimeseriesBuilder()
    .title(title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.span ?? 12)
    .height(o.height ?? 8)
    .fillOpacity(10)
    .legend(
      new VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(LegendDisplayMode.List)
        .placement(LegendPlacement.Bottom),
    )
    .tooltip(new VizTooltipOptionsBuilder().mode(TooltipDisplayMode.Multi).sort(SortOrder.Descending))
    .targets(withRefIds(targets));
  if (o.min !== undefined) panel.min(o.min);
  if (o.noValue !== undefined) panel.noValue(o.noValue);
  if (o.stacked) panel.stacking(new StackingConfigBuilder().mode(StackingMode.Normal));
  if (o.alertAt !== undefined) {
    panel
      .thresholds(thresholds([GREEN(), { value: o.alertAt, color: "red" }]))
      .thresholdsStyle(new GraphThresholdsStyleConfigBuilder().mode(GraphThresholdsStyleMode.Dashed));
  }
  return panel;
}

function stat(
  title: string,
  targets: DataqueryBuilder[],
  o: PanelOptions & { steps?: Threshold[]; showName?: boolean },
): StatBuilder {
  return new StatBuilder()
    .title(title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.span ?? 4)
    .height(o.height ?? 4)
    .noValue(o.noValue ?? "0")
    .graphMode(BigValueGraphMode.Area)
    .colorMode(BigValueColorMode.Background)
    .textMode(o.showName ? BigValueTextMode.ValueAndName : BigValueTextMode.Value)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(["lastNotNull"]))
    .thresholds(thresholds(o.steps ?? [GREEN()]))
    .targets(withRefIds(targets));
}

function table(title: string, targets: DataqueryBuilder[], o: PanelOptions): TableBuilder {
  return new TableBuilder()
    .title(title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.span ?? 12)
    .height(o.height ?? 8)
    .noValue(o.noValue ?? "nothing")
    .targets(withRefIds(targets));
}

/** p50 and p95 of a latency histogram, with exemplars (trace ids) shown. */
function quantiles(metric: string, selector: string, by: string[] = []): DataqueryBuilder[] {
  const groups = ["le", ...by].join(", ");
  const matchers = selector ? `{${selector}}` : "";
  const legendPrefix = by.map((l) => `{{${l}}} `).join("");
  return [0.5, 0.95].map((q) =>
    query(
      `histogram_quantile(${q}, sum by (${groups}) (rate(${metric}_bucket${matchers}[$__rate_interval])))`,
      { legend: `${legendPrefix}p${q * 100}`, exemplar: true },
    ),
  );
}

function datasourceVariable(): DatasourceVariableBuilder {
  return new DatasourceVariableBuilder("datasource").label("Data source").type("prometheus");
}

function base(uid: string, title: string, description: string): DashboardBuilder {
  return new DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(TAGS)
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .refresh("30s")
    .time({ from: "now-6h", to: "now" })
    .timezone("browser")
    .withVariable(datasourceVariable())
    .link(
      new DashboardLinkBuilder("orgwatch")
        .type(DashboardLinkType.Dashboards)
        .tags(["orgwatch"])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    );
}

/** A data link from a series with a `role` label to the agent dashboard. */
function agentLink(): DashboardLinkBuilder {
  return new DashboardLinkBuilder("Agent ${__field.labels.role}")
    .type(DashboardLinkType.Link)
    .url(
      "/d/orgwatch-agent/orgwatch-agent?var-role=${__field.labels.role}&${datasource:queryparam}&${__url_time_range}",
    );
}

function overview(): DashboardBuilder {
  return base(
    "orgwatch-overview",
    "orgwatch / Organization overview",
    "What is wrong with my agents, at a glance: who is up, who is behind, what failed.",
  )
    .withRow(new RowBuilder("Now"))
    .withPanel(
      stat("Agents up", [query("sum(orgwatch_agent_up)", { instant: true })], {
        description: "Agents that published a status within the staleness window (--agent.stale-after).",
        unit: "short",
      }),
    )
    .withPanel(
      stat("Agents down", [query("count(orgwatch_agent_up == 0)", { instant: true })], {
        description:
          "Agents of the roster with no status within the window, or none ever (OrgwatchAgentDown).",
        unit: "short",
        steps: [GREEN(), { value: 1, color: "red" }],
      }),
    )
    .withPanel(
      stat("Unprocessed tasks", [query(`sum(orgwatch_consumer_lag_messages{${TASKS}})`, { instant: true })], {
        description: "Tasks waiting or in progress over all agents (consumer lag).",
        unit: "short",
      }),
    )
    .withPanel(
      stat(
        "Dead letters in range",
        [query("sum(increase(orgwatch_deadletter_messages_total[$__range]))", { instant: true })],
        {
          description: "Messages that exhausted max-deliver in the dashboard's time range. Each one pages.",
          unit: "short",
          steps: [GREEN(), { value: 1, color: "red" }],
        },
      ),
    )
    .withPanel(
      stat(
        "Broadcasts unacked > 5m",
        [query("count(orgwatch_broadcast_oldest_unacked_age_seconds > 300)", { instant: true })],
        {
          description: "Agents whose oldest unacknowledged broadcast is older than 5 minutes.",
          unit: "short",
          steps: [GREEN(), { value: 1, color: "orange" }],
        },
      ),
    )
    .withPanel(
      stat("Tasks overdue", [query("sum(orgwatch_tasks_overdue)", { instant: true })], {
        description: "Open tasks already past their own SLA (ack or complete).",
        unit: "short",
        steps: [GREEN(), { value: 1, color: "orange" }],
      }),
    )
    .withRow(new RowBuilder("Work"))
    .withPanel(
      timeseries(
        "Lag per agent",
        [query(`role_kind:orgwatch_consumer_lag_messages:sum{${TASKS}}`, { legend: "{{role}}" })],
        {
          description:
            "Unprocessed tasks (pending + ack-pending) per agent. The dashed line is the reference organization's alert threshold: 5.",
          unit: "short",
          alertAt: 5,
          min: 0,
        },
      ).dataLinks([agentLink()]),
    )
    .withPanel(
      timeseries(
        "Oldest unacknowledged task",
        [
          query(`max by (role) (orgwatch_consumer_oldest_unacked_age_seconds{${TASKS}})`, {
            legend: "{{role}}",
          }),
        ],
        {
          description: "Age of each agent's oldest unacknowledged task, from its stored time (exact).",
          unit: "s",
          min: 0,
        },
      ).dataLinks([agentLink()]),
    )
    .withPanel(
      timeseries(
        "Drain time per agent",
        [
          query(`max by (role) (orgwatch_consumer_drain_eta_seconds{${TASKS}} < +Inf)`, {
            legend: "{{role}}",
          }),
        ],
        {
          description:
            "How long each agent's waiting tasks take at its ack rate of the last hour (admission control defers past 4h: the dashed line). Agents with work and no ack at all are stalled or stopped, not shown here.",
          unit: "s",
          alertAt: 14400,
          min: 0,
        },
      ).dataLinks([agentLink()]),
    )
    .withPanel(
      timeseries(
        "Tokens and cost per agent",
        [
          query(`sum by (role) (increase(orgwatch_tokens_total[$__rate_interval]))`, {
            legend: "tokens {{role}}",
          }),
          query(`sum by (role) (increase(orgwatch_redelivered_tokens_total[$__rate_interval]))`, {
            legend: "spent twice {{role}}",
          }),
        ],
        {
          description:
            "Tokens agents report on their completions, and those spent on work done again (failed, or delivered more than once).",
          unit: "short",
          min: 0,
        },
      ).dataLinks([agentLink()]),
    )
    .withPanel(
      timeseries(
        "Consumers by status",
        [query(`sum by (status) (orgwatch_consumer_status{${TASKS}})`, { legend: "{{status}}" })],
        {
          description:
            "Task consumers by evaluated status: ok, lagging (acks advance, lag does not shrink), stalled (ack floor stuck past ack wait), stopped (no activity while work waits).",
          unit: "short",
          stacked: true,
          min: 0,
        },
      ),
    )
    .withPanel(
      table(
        "Agent states",
        [query("max by (role, state) (orgwatch_agent_state == 1)", { instant: true, table: true })],
        {
          description: "Each agent's last reported state (idle, busy, error, offline, unknown).",
          unit: "none",
        },
      ).dataLinks([agentLink()]),
    )
    .withRow(new RowBuilder("Failures and acknowledgements"))
    .withPanel(
      timeseries(
        "Dead letters per agent",
        [
          query("sum by (role) (increase(orgwatch_deadletter_messages_total[$__rate_interval]))", {
            legend: "{{role}}",
          }),
        ],
        { description: "Messages routed to the dead letters, per agent.", unit: "short", span: 8, min: 0 },
      ).dataLinks([agentLink()]),
    )
    .withPanel(
      timeseries(
        "Lost, unrouted and broken chains",
        [
          query(
            `sum by (role) (increase(orgwatch_consumer_lost_messages_total{kind=~"tasks|inbox"}[$__rate_interval]))`,
            { legend: "lost {{role}}" },
          ),
          query(`sum by (role) (increase(orgwatch_unrouted_messages_total[$__rate_interval]))`, {
            legend: "unrouted {{role}}",
          }),
          query(`sum by (role) (increase(orgwatch_chain_links_broken_total[$__rate_interval]))`, {
            legend: "broken chain {{role}}",
          }),
        ],
        {
          description:
            "Work that disappeared: lost (left its stream unacknowledged), unrouted (published where no stream stores it), broken chains (an on_complete next step that never came). Each loss and each unrouted message pages.",
          unit: "short",
          span: 8,
          min: 0,
        },
      ).dataLinks([agentLink()]),
    )
    .withPanel(
      timeseries(
        "Duplicate work",
        [query(`sum by (role) (orgwatch_consumer_redelivered_messages{${TASKS}})`, { legend: "{{role}}" })],
        {
          description: "Tasks delivered more than once and still unacknowledged, per agent.",
          unit: "short",
          span: 8,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Broadcast acknowledgement",
        [query("max by (role) (orgwatch_broadcast_oldest_unacked_age_seconds)", { legend: "{{role}}" })],
        {
          description:
            "Age of each agent's oldest unacknowledged broadcast. Agents must ack within 5 minutes (dashed line).",
          unit: "s",
          span: 8,
          alertAt: 300,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "SLA breaches",
        [
          query("sum by (role, sla) (increase(orgwatch_task_sla_breaches_total[$__rate_interval]))", {
            legend: "{{role}} {{sla}}",
          }),
        ],
        { description: "Tasks that missed their ack or complete SLA, per agent.", unit: "short", min: 0 },
      ),
    )
    .withPanel(
      table(
        "Top problems",
        [
          query(
            'sort_desc(count by (alertname, severity, role) (ALERTS{alertstate="firing", alertname=~"Orgwatch.*"}))',
            { instant: true, table: true },
          ),
        ],
        {
          description:
            "orgwatch alerts firing now (from the Prometheus that evaluates alerts/*.yml), by severity and agent.",
          unit: "none",
        },
      ),
    );
}

function agent(): DashboardBuilder {
  return base(
    "orgwatch-agent",
    "orgwatch / Agent",
    "One agent (role): its queue, its status, its processing time, its failures and its chains.",
  )
    .withVariable(
      new QueryVariableBuilder("role")
        .label("Agent")
        .datasource(DATASOURCE)
        .query("label_values(orgwatch_consumer_lag_messages, role)")
        .definition("label_values(orgwatch_consumer_lag_messages, role)")
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .sort(VariableSort.AlphabeticalAsc),
    )
    .withRow(new RowBuilder("Now"))
    .withPanel(
      stat("Up", [query(`orgwatch_agent_up{${ROLE}}`, { instant: true })], {
        description: "1 when the agent published a status within the staleness window.",
        unit: "bool_yes_no",
        noValue: "unknown",
        steps: [
          { value: null, color: "red" },
          { value: 1, color: "green" },
        ],
      }),
    )
    .withPanel(
      stat("State", [query(`orgwatch_agent_state{${ROLE}} == 1`, { instant: true, legend: "{{state}}" })], {
        description: "The agent's last reported state.",
        unit: "none",
        noValue: "unknown",
        showName: true,
      }),
    )
    .withPanel(
      stat(
        "Since last status",
        [query(`time() - orgwatch_agent_last_status_timestamp_seconds{${ROLE}}`, { instant: true })],
        {
          description: "Time since the agent's last status message.",
          unit: "s",
          noValue: "never",
          steps: [GREEN(), { value: 120, color: "red" }],
        },
      ),
    )
    .withPanel(
      stat("Lag", [query(`sum(orgwatch_consumer_lag_messages{${ROLE},${TASKS}})`, { instant: true })], {
        description: "Tasks waiting or in progress. Alert over 5 for 5 minutes.",
        unit: "short",
        steps: [GREEN(), { value: 6, color: "red" }],
      }),
    )
    .withPanel(
      stat(
        "Consumer status",
        [
          query(`orgwatch_consumer_status{${ROLE},${TASKS}} == 1`, {
            instant: true,
            legend: "{{consumer}}: {{status}}",
          }),
        ],
        {
          description: "Evaluated status of the agent's task consumer(s).",
          unit: "none",
          showName: true,
        },
      ),
    )
    .withPanel(
      stat(
        "Ack wait",
        [query(`min(orgwatch_consumer_ack_wait_seconds{${ROLE},${TASKS}})`, { instant: true })],
        {
          description:
            "The task consumer's ack wait. Under 20 minutes, long reasoning turns are redelivered.",
          unit: "s",
          steps: [
            { value: null, color: "red" },
            { value: 1200, color: "green" },
          ],
        },
      ),
    )
    .withRow(new RowBuilder("Queue"))
    .withPanel(
      timeseries(
        "Lag",
        [
          query(`sum(orgwatch_consumer_pending_messages{${ROLE},${TASKS}})`, {
            legend: "waiting (not delivered)",
          }),
          query(`sum(orgwatch_consumer_ack_pending_messages{${ROLE},${TASKS}})`, {
            legend: "in progress (not acked)",
          }),
        ],
        {
          description: "Unprocessed tasks: not yet delivered, and delivered but not acknowledged.",
          unit: "short",
          stacked: true,
          alertAt: 5,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Oldest unacknowledged task",
        [
          query(`max(orgwatch_consumer_oldest_unacked_age_seconds{${ROLE},${TASKS}})`, {
            legend: "oldest unacked",
          }),
          query(`min(orgwatch_consumer_ack_wait_seconds{${ROLE},${TASKS}})`, { legend: "ack wait" }),
        ],
        {
          description:
            "Age of the oldest unacknowledged task (exact, from its stored time), against the ack wait: past it, the task is redelivered.",
          unit: "s",
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries("Processing time (delivery → ack)", quantiles("orgwatch_task_processing_seconds", ROLE), {
        description: "From sampled acks: how long the agent takes per task.",
        unit: "s",
        span: 8,
      }),
    )
    .withPanel(
      timeseries(
        "Redeliveries and naks",
        [
          query(`sum(orgwatch_consumer_redelivered_messages{${ROLE},${TASKS}})`, {
            legend: "redelivered, unacked",
          }),
          query(`sum(increase(orgwatch_consumer_naks_total{${ROLE}}[$__rate_interval]))`, { legend: "naks" }),
        ],
        {
          description: "Duplicate work: tasks delivered again and still unacknowledged; naks (refusals).",
          unit: "short",
          span: 8,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Dead letters",
        [
          query(`sum(increase(orgwatch_deadletter_messages_total{${ROLE}}[$__rate_interval]))`, {
            legend: "dead letters",
          }),
        ],
        {
          description: "The agent's tasks that exhausted max-deliver. Each one pages.",
          unit: "short",
          span: 8,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Lost tasks",
        [
          query(
            `sum by (reason) (increase(orgwatch_consumer_lost_messages_total{${ROLE},kind=~"tasks|inbox"}[$__rate_interval]))`,
            { legend: "lost: {{reason}}" },
          ),
          query(`sum(increase(orgwatch_unrouted_messages_total{${ROLE}}[$__rate_interval]))`, {
            legend: "unrouted",
          }),
          query(`sum by (reason) (increase(orgwatch_chain_links_broken_total{${ROLE}}[$__rate_interval]))`, {
            legend: "broken chain: {{reason}}",
          }),
        ],
        {
          description:
            "The agent's work that disappeared: lost by reason (max_age, limits, purge, delete, unknown), published to its subjects where no stream stores them, and its completed tasks whose on_complete next step broke.",
          unit: "short",
          span: 8,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Drain time and ack rate",
        [
          query(`max(orgwatch_consumer_drain_eta_seconds{${ROLE},${TASKS}} < +Inf)`, {
            legend: "drain time",
          }),
        ],
        {
          description:
            "How long the agent's waiting tasks take at its ack rate over --backpressure.window (the dashed line: 4h, where admission defers and OrgwatchBacklogTooLong warns).",
          unit: "s",
          span: 8,
          alertAt: 14400,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Cost",
        [
          query(`sum by (outcome) (increase(orgwatch_cost_usd_total{${ROLE}}[$__rate_interval]))`, {
            legend: "{{outcome}}",
          }),
        ],
        {
          description:
            "US dollars the agent reported on its completions, by outcome (failed work is money spent twice).",
          unit: "currencyUSD",
          span: 8,
          stacked: true,
          min: 0,
        },
      ),
    )
    .withRow(new RowBuilder("Chains and broadcasts"))
    .withPanel(
      timeseries(
        "Tasks completed",
        [
          query(`sum by (outcome) (increase(orgwatch_tasks_completed_total{${ROLE}}[$__rate_interval]))`, {
            legend: "{{outcome}}",
          }),
        ],
        { description: "The agent's tasks by outcome.", unit: "short", span: 8, stacked: true, min: 0 },
      ),
    )
    .withPanel(
      timeseries("Task duration (published → done)", quantiles("orgwatch_task_duration_seconds", ROLE), {
        description: "How long the agent's tasks take end to end. Exemplars link to each task's trace.",
        unit: "s",
        span: 8,
      }),
    )
    .withPanel(
      timeseries(
        "Broadcast acknowledgement",
        [
          query(`max(orgwatch_broadcast_oldest_unacked_age_seconds{${ROLE}})`, {
            legend: "oldest unacked broadcast",
          }),
        ],
        {
          description: "Age of the agent's oldest unacknowledged broadcast; it must ack within 5 minutes.",
          unit: "s",
          span: 8,
          alertAt: 300,
          min: 0,
        },
      ),
    );
}

function chains(): DashboardBuilder {
  return base(
    "orgwatch-chains",
    "orgwatch / Chains & SLAs",
    "on_complete chains end to end: durations, steps, where time goes (queue vs work), SLAs. Exemplars link to traces.",
  )
    .withRow(new RowBuilder("Chains"))
    .withPanel(
      timeseries("Chain duration", quantiles("orgwatch_chain_duration_seconds", ""), {
        description:
          "From the first task's publish to the last task's completion. Each exemplar is a chain's trace id: click it to open the trace.",
        unit: "s",
      }),
    )
    .withPanel(
      timeseries(
        "Chain steps",
        [
          query(
            "histogram_quantile(0.95, sum by (le) (rate(orgwatch_chain_steps_bucket[$__rate_interval])))",
            {
              legend: "p95 steps",
            },
          ),
          query(
            "sum(rate(orgwatch_chain_steps_sum[$__rate_interval])) / sum(rate(orgwatch_chain_steps_count[$__rate_interval]))",
            { legend: "mean steps" },
          ),
        ],
        { description: "Tasks per completed chain.", unit: "short", min: 0 },
      ),
    )
    .withPanel(
      timeseries(
        "Cost per chain",
        [
          query(
            "sum(rate(orgwatch_chain_cost_usd_sum[$__rate_interval])) / sum(rate(orgwatch_chain_cost_usd_count[$__rate_interval]))",
            { legend: "mean cost per chain" },
          ),
        ],
        {
          description:
            "What a completed chain's tasks reported costing (usage on their task.completed / task.failed events), in US dollars; chains without reported usage are not counted.",
          unit: "currencyUSD",
          min: 0,
        },
      ),
    )
    .withRow(new RowBuilder("Per step: queue vs work"))
    .withPanel(
      timeseries(
        "Queue time (published → first delivery)",
        quantiles("orgwatch_task_queue_seconds", "", ["role"]),
        {
          description: "How long tasks wait for their agent, per agent. Exemplars link to the task's trace.",
          unit: "s",
        },
      ),
    )
    .withPanel(
      timeseries("Work time (delivery → ack)", quantiles("orgwatch_task_processing_seconds", "", ["role"]), {
        description: "How long each agent works a task (sampled acks). Exemplars link to the task's trace.",
        unit: "s",
      }),
    )
    .withPanel(
      timeseries(
        "Tasks published and completed",
        [
          query("sum by (role) (increase(orgwatch_tasks_published_total[$__rate_interval]))", {
            legend: "{{role}} published",
          }),
          query("sum by (role, outcome) (increase(orgwatch_tasks_completed_total[$__rate_interval]))", {
            legend: "{{role}} {{outcome}}",
          }),
        ],
        { description: "Task flow per agent.", unit: "short", span: 24, min: 0 },
      ),
    )
    .withRow(new RowBuilder("SLAs"))
    .withPanel(
      timeseries(
        "Tasks overdue now",
        [query("sum by (role, sla) (orgwatch_tasks_overdue)", { legend: "{{role}} {{sla}}" })],
        {
          description: "Open tasks already past their ack or complete SLA (fires OrgwatchTasksOverdue).",
          unit: "short",
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "SLA breaches",
        [
          query("sum by (role, sla) (increase(orgwatch_task_sla_breaches_total[$__rate_interval]))", {
            legend: "{{role}} {{sla}}",
          }),
        ],
        { description: "Tasks that missed their SLA.", unit: "short", min: 0 },
      ),
    );
}

function health(): DashboardBuilder {
  return base(
    "orgwatch-health",
    "orgwatch / orgwatch health",
    "orgwatch itself: when it is down or blind, every other alert is silent.",
  )
    .withRow(new RowBuilder("Now"))
    .withPanel(
      stat("Scrape up", [query('up{job="orgwatch"}', { instant: true, legend: "{{instance}}" })], {
        description: "Prometheus can scrape orgwatch (OrgwatchDown).",
        unit: "bool_yes_no",
        steps: [
          { value: null, color: "red" },
          { value: 1, color: "green" },
        ],
        noValue: "no target",
      }),
    )
    .withPanel(
      stat("NATS connected", [query("orgwatch_nats_connected", { instant: true, legend: "{{instance}}" })], {
        description: "orgwatch is connected to NATS (OrgwatchNatsDisconnected).",
        unit: "bool_yes_no",
        steps: [
          { value: null, color: "red" },
          { value: 1, color: "green" },
        ],
      }),
    )
    .withPanel(
      stat(
        "Last poll",
        [query("orgwatch:last_poll_age_seconds", { instant: true, legend: "{{instance}}" })],
        {
          description: "Time since the last successful JetStream poll (OrgwatchPollsStale over 5 minutes).",
          unit: "s",
          steps: [GREEN(), { value: 300, color: "red" }],
        },
      ),
    )
    .withPanel(
      stat(
        "Lease held",
        [query("orgwatch_lease_held", { instant: true, legend: "{{instance}} {{lease}}" })],
        {
          description:
            "Which orgwatch of a pair exports spans and writes chain state: exactly one (OrgwatchLeaseNoHolder, OrgwatchLeaseTwoHolders).",
          unit: "bool_yes_no",
          steps: [GREEN()],
        },
      ),
    )
    .withPanel(
      table("Version", [query("orgwatch_build_info", { instant: true, table: true })], {
        description: "orgwatch version and Node.js runtime per instance.",
        unit: "none",
        span: 12,
        height: 4,
      }),
    )
    .withRow(new RowBuilder("Polls"))
    .withPanel(
      timeseries("Poll duration", [query("orgwatch_poll_duration_seconds", { legend: "{{instance}}" })], {
        description: "Wall time of the last JetStream poll (list pages and oldest-message reads).",
        unit: "s",
        span: 8,
        min: 0,
      }),
    )
    .withPanel(
      timeseries(
        "Poll errors",
        [
          query("sum by (instance) (increase(orgwatch_poll_errors_total[$__rate_interval]))", {
            legend: "{{instance}}",
          }),
        ],
        { description: "Failed JetStream polls (OrgwatchPollsFailing).", unit: "short", span: 8, min: 0 },
      ),
    )
    .withPanel(
      timeseries(
        "NATS reconnects",
        [
          query("sum by (instance) (increase(orgwatch_nats_reconnects_total[$__rate_interval]))", {
            legend: "{{instance}}",
          }),
        ],
        { description: "Reconnections to NATS.", unit: "short", span: 8, min: 0 },
      ),
    )
    .withRow(new RowBuilder("Input and output"))
    .withPanel(
      timeseries(
        "Invalid messages",
        [
          query("sum by (source, reason) (increase(orgwatch_invalid_messages_total[$__rate_interval]))", {
            legend: "{{source}} {{reason}}",
          }),
        ],
        {
          description: "Messages counted as invalid and skipped, by source and reason.",
          unit: "short",
          span: 8,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Label overflow",
        [
          query("sum by (metric) (increase(orgwatch_label_overflow_total[$__rate_interval]))", {
            legend: "{{metric}}",
          }),
        ],
        {
          description: "Label values refused by the cardinality cap (--labels.max-values), by metric.",
          unit: "short",
          span: 8,
          min: 0,
        },
      ),
    )
    .withPanel(
      timeseries(
        "Scrape",
        [
          query('scrape_duration_seconds{job="orgwatch"}', { legend: "{{instance}} duration" }),
          query('scrape_samples_scraped{job="orgwatch"}', { legend: "{{instance}} samples" }),
        ],
        {
          description: "How long Prometheus takes to scrape orgwatch, and how many series it exports.",
          unit: "s",
          span: 8,
          min: 0,
        },
      ).overrideByQuery("B", [
        { id: "unit", value: "short" },
        { id: "custom.axisPlacement", value: "right" },
      ]),
    );
}

/** File name → dashboard, in the order of the README. */
export function buildDashboards(): Map<string, Dashboard> {
  const built = new Map<string, Dashboard>();
  for (const [file, builder] of [
    ["overview.json", overview()],
    ["agent.json", agent()],
    ["chains.json", chains()],
    ["health.json", health()],
  ] as const) {
    built.set(file, builder.build());
  }
  return built;
}

export function renderDashboard(dashboard: Dashboard): string {
  return JSON.stringify(dashboard, null, 2) + "\n";
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, dashboard] of buildDashboards()) {
    writeFileSync(join(DASHBOARDS_DIR, file), renderDashboard(dashboard));
    console.log(`dashboards/${file}`);
  }
}

-- Hand-written: schema.prisma cannot express these, so it is unchanged.

-- CreateIndex: at most one active version per prompt name (a partial unique index)
CREATE UNIQUE INDEX "PromptVersion_name_active_key" ON "PromptVersion"("name") WHERE "isActive";

-- AddCheckConstraint: A/B weights are percentages
ALTER TABLE "Variant" ADD CONSTRAINT "Variant_weight_check" CHECK ("weight" >= 0 AND "weight" <= 100);
